//! Reads `auth-user-pass` credentials: from the profile (file or inline), prompting on the
//! terminal for whatever is missing.

use std::io::{BufRead, Write};

use zeroize::Zeroizing;

use crate::config::{AuthUserPass, Profile};
use crate::proto::client::Credentials;

/// Resolves the profile's credentials, prompting when needed.
pub fn resolve(profile: &Profile) -> Result<Option<Credentials>, String> {
    let Some(aup) = &profile.auth_user_pass else {
        return Ok(None);
    };
    let (user, pass) = match aup {
        AuthUserPass::Prompt => (None, None),
        AuthUserPass::File { username, password } => (Some(username.clone()), password.clone()),
    };
    let username = match user {
        Some(u) => u,
        None => prompt_line("Enter Auth Username: ")?,
    };
    let password = match pass {
        Some(p) => p,
        None => rpassword::prompt_password("Enter Auth Password: ")
            .map_err(|e| format!("cannot read the password from the terminal: {e} (put it on line 2 of the auth-user-pass file)"))?,
    };
    let password = match &profile.static_challenge {
        Some(sc) => {
            let response = challenge_response(&sc.text, sc.echo)?;
            sc.encode(&password, &response)
        }
        None => password,
    };
    Ok(Some(Credentials {
        username: Zeroizing::new(username),
        password: Zeroizing::new(password),
    }))
}

/// Asks a challenge question (`static-challenge`, CRV1, CR_TEXT): on the terminal (hidden unless `echo`), or one line
/// from standard input when it is not a terminal (a pipe, a script).
pub fn challenge_response(text: &str, echo: bool) -> Result<String, String> {
    use std::io::IsTerminal as _;
    let prompt = format!("CHALLENGE: {text} ");
    if echo || !std::io::stdin().is_terminal() {
        return prompt_line(&prompt).map_err(|_| {
            format!("no answer to the challenge '{text}' (stdin closed); answer it on the terminal or on standard input")
        });
    }
    rpassword::prompt_password(prompt)
        .map_err(|e| format!("cannot read the challenge response from the terminal: {e}"))
}

/// Whether the profile holds the whole credentials (nothing would be asked).
pub fn complete(profile: &Profile) -> bool {
    if profile.static_challenge.is_some() && profile.auth_user_pass.is_some() {
        return false;
    }
    match &profile.auth_user_pass {
        None => true,
        Some(AuthUserPass::Prompt) => false,
        Some(AuthUserPass::File { password, .. }) => password.is_some(),
    }
}

fn prompt_line(prompt: &str) -> Result<String, String> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the user name: {e}"))?;
    if line.is_empty() {
        return Err(
            "no user name given (stdin closed); put the credentials in a file: auth-user-pass FILE"
                .into(),
        );
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
