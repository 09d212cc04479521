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

/// Decrypts an encrypted PKCS#8 `key` (if the profile has one) with the `askpass` password or
/// one asked on the terminal (standard input when it is not a terminal).
pub fn unlock_key(profile: &mut Profile) -> Result<(), String> {
    let Some(key) = &profile.tls.key else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(key).into_owned();
    const BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    let Some(start) = text.find(BEGIN) else {
        return Ok(());
    };
    let name = profile.source.display().to_string();
    let body = &text[start + BEGIN.len()..];
    let body = &body[..body.find(END).unwrap_or(body.len())];
    use base64::Engine as _;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("{name}: 'key': not valid PEM: {e}"))?;
    let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
        .map_err(|e| format!("{name}: 'key': not an encrypted PKCS#8 key: {e}"))?;
    let pass = match &profile.tls.askpass {
        Some(Some(p)) => Zeroizing::new(p.clone()),
        _ => Zeroizing::new(
            challenge_response_hidden("Enter Private Key Password:")
                .map_err(|e| format!("{name}: 'key': {e}"))?,
        ),
    };
    let plain = info.decrypt(pass.as_bytes()).map_err(|e| {
        format!("{name}: 'key': cannot decrypt the private key: {e} (wrong password?)")
    })?;
    profile.tls.key = Some(crate::config::pem_block("PRIVATE KEY", plain.as_bytes()).into_bytes());
    Ok(())
}

/// Opens the profile's `pkcs12` file (if any) and puts its certificate, key, chain and CA into
/// the profile's TLS settings. The password: none (many exports have none), the `askpass` file,
/// else asked on the terminal (or read from standard input when that is not a terminal).
pub fn unlock_pkcs12(profile: &mut Profile) -> Result<(), String> {
    let Some(der) = profile.tls.pkcs12.clone() else {
        return Ok(());
    };
    let name = profile.source.display().to_string();
    let try_open = |pass: &str| p12_keystore::Pkcs12Archive::from_pkcs12(&der, pass);
    let archive = match try_open("") {
        Ok(a) => a,
        Err(_) => {
            let pass = match &profile.tls.askpass {
                Some(Some(p)) => Zeroizing::new(p.clone()),
                _ => Zeroizing::new(
                    challenge_response_hidden("Enter Private Key Password:")
                        .map_err(|e| format!("{name}: pkcs12: {e}"))?,
                ),
            };
            try_open(&pass).map_err(|e| {
                format!(
                    "{name}: cannot open the pkcs12 file: {e} (a wrong password, or a file \
                     encrypted with an algorithm this build cannot read: re-export it with \
                     'openssl pkcs12 -export' (AES-256) or convert it with 'openssl pkcs12 -in \
                     FILE -out client.pem -nodes' and use ca/cert/key)"
                )
            })?
        }
    };
    let key = archive
        .keys
        .first()
        .ok_or_else(|| format!("{name}: the pkcs12 file holds no private key"))?;
    // The key's certificate: same local key id, else the first certificate.
    let leaf = archive
        .certs
        .iter()
        .find(|c| {
            c.local_key_id.is_some()
                && c.local_key_id.as_deref() == key.local_key_id.as_ref().map(|k| k.0.as_slice())
        })
        .or_else(|| archive.certs.first())
        .ok_or_else(|| format!("{name}: the pkcs12 file holds no certificate"))?;
    let pem = |label: &str, der: &[u8]| crate::config::pem_block(label, der).into_bytes();
    let mut ca = Vec::new();
    let mut chain = Vec::new();
    for c in archive.certs.iter().filter(|c| c.cert != leaf.cert) {
        let block = pem("CERTIFICATE", c.cert.as_der());
        if c.cert.subject() == c.cert.issuer() {
            ca.extend_from_slice(&block);
        } else {
            chain.extend_from_slice(&block);
        }
    }
    let tls = &mut profile.tls;
    tls.cert = Some(pem("CERTIFICATE", leaf.cert.as_der()));
    tls.key = Some(pem("PRIVATE KEY", key.key.as_der()));
    if tls.ca.is_none() {
        if ca.is_empty() {
            return Err(format!(
                "{name}: no 'ca' in the profile and no CA certificate in the pkcs12 file: the \
                 server could not be authenticated"
            ));
        }
        tls.ca = Some(ca);
    }
    if !chain.is_empty() && tls.extra_certs.is_none() {
        tls.extra_certs = Some(chain);
    }
    tls.pkcs12 = None;
    Ok(())
}

/// A hidden prompt on the terminal, or a line from standard input when it is not a terminal.
fn challenge_response_hidden(prompt: &str) -> Result<String, String> {
    use std::io::IsTerminal as _;
    if !std::io::stdin().is_terminal() {
        return prompt_line(prompt).map_err(|_| {
            "no password given (stdin closed); put it in a file named by 'askpass FILE'".into()
        });
    }
    rpassword::prompt_password(prompt).map_err(|e| format!("cannot read the password: {e}"))
}
