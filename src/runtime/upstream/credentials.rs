//! Proxy credentials: from the profile, or asked on the terminal once per run and proxy.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::Mutex;

use zeroize::Zeroizing;

use crate::config::AuthUserPass;

/// A user name and password.
pub(super) struct ProxyCreds {
    pub(super) user: String,
    pub(super) pass: Zeroizing<String>,
}

/// A user name and password typed on the terminal.
type Typed = (String, Zeroizing<String>);

/// Answers typed on the terminal, per proxy (`host:port`), kept for reconnections.
static PROMPTED: Mutex<Option<HashMap<String, Typed>>> = Mutex::new(None);

/// The credentials for the proxy `key`: from the profile, or asked on the terminal.
pub(super) async fn get(
    key: &str,
    given: Option<&AuthUserPass>,
    directive: &str,
) -> Result<ProxyCreds, String> {
    let user = match given {
        Some(AuthUserPass::File {
            username,
            password: Some(p),
        }) => {
            return Ok(ProxyCreds {
                user: username.clone(),
                pass: Zeroizing::new(p.clone()),
            });
        }
        Some(AuthUserPass::File { username, .. }) => Some(username.clone()),
        Some(AuthUserPass::Prompt) => None,
        None => {
            return Err(format!(
                "the proxy {key} asks for a user name and password but the profile gives none: \
                 add an auth file to '{directive}'"
            ));
        }
    };
    if let Some((u, p)) = PROMPTED
        .lock()
        .ok()
        .and_then(|m| m.as_ref().and_then(|m| m.get(key).cloned()))
    {
        return Ok(ProxyCreds { user: u, pass: p });
    }
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "the proxy {key} asks for a user name and password and there is no terminal to ask \
             on: put them in a file (user name on line 1, password on line 2) and name it in \
             '{directive}' or 'http-proxy-user-pass'"
        ));
    }
    let key_owned = key.to_owned();
    let (u, p) =
        tokio::task::spawn_blocking(move || -> Result<(String, Zeroizing<String>), String> {
            let u = match user {
                Some(u) => u,
                None => {
                    eprint!("Enter proxy {key_owned} Username: ");
                    let mut l = String::new();
                    std::io::stdin()
                        .read_line(&mut l)
                        .map_err(|e| format!("cannot read the proxy user name: {e}"))?;
                    l.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let p = rpassword::prompt_password(format!("Enter proxy {key_owned} Password: "))
                .map_err(|e| format!("cannot read the proxy password: {e}"))?;
            Ok((u, Zeroizing::new(p)))
        })
        .await
        .map_err(|e| format!("asking for the proxy password: {e}"))??;
    if let Ok(mut m) = PROMPTED.lock() {
        m.get_or_insert_with(HashMap::new)
            .insert(key.to_owned(), (u.clone(), p.clone()));
    }
    Ok(ProxyCreds { user: u, pass: p })
}
