//! Decoding of the files a profile refers to: static keys, tls-crypt-v2 client keys,
//! fingerprints, credentials and PEM sanity checks. Errors are plain messages; the parser adds the
//! file, line and directive.

use base64::Engine as _;
use zeroize::Zeroizing;

use super::profile::AuthUserPass;
use super::server_profile::Key1;
use crate::proto::keys::{KEY2_LEN, Key2, pem_body};

/// PEM label of a tls-crypt-v2 client key file.
pub(crate) const TLS_CRYPT_V2_CLIENT_LABEL: &str = "OpenVPN tls-crypt-v2 client key";

/// PEM label of a tls-crypt-v2 server key file.
pub(crate) const TLS_CRYPT_V2_SERVER_LABEL: &str = "OpenVPN tls-crypt-v2 server key";

/// PEM label of an `auth-gen-token-secret` file.
pub(crate) const AUTH_TOKEN_LABEL: &str = "OpenVPN auth-token server key";

/// Largest WKc OpenVPN accepts (`TLS_CRYPT_V2_MAX_WKC_LEN`).
pub(crate) const MAX_WKC_LEN: usize = 1024;

/// Smallest meaningful WKc: tag (32) + encrypted Kc (256) + length (2).
const MIN_WKC_LEN: usize = 32 + KEY2_LEN + 2;

/// Parses an `OpenVPN Static key V1` file (tls-auth / tls-crypt).
pub(crate) fn static_key(bytes: &[u8]) -> Result<Key2, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the key file is not text".to_owned())?;
    Key2::parse_static_key_file(text).map_err(|e| e.to_string())
}

/// Parses a tls-crypt-v2 client key: base64 of `Kc (256 bytes) || WKc`, where the last two bytes
/// of WKc are WKc's own total length, big-endian.
pub(crate) fn tls_crypt_v2_client_key(bytes: &[u8]) -> Result<(Key2, Vec<u8>), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the key file is not text".to_owned())?;
    if text.contains("-----BEGIN OpenVPN tls-crypt-v2 server key-----") {
        return Err(
            "this is a tls-crypt-v2 *server* key; the client needs its client key \
                    (openvpn --tls-crypt-v2 server.key --genkey tls-crypt-v2-client client.key)"
                .to_owned(),
        );
    }
    let b64 = pem_body(text, TLS_CRYPT_V2_CLIENT_LABEL).map_err(|e| e.to_string())?;
    let raw = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| "the key body is not valid base64".to_owned())?,
    );
    if raw.len() < KEY2_LEN + MIN_WKC_LEN {
        return Err(format!(
            "the client key is {} bytes long, expected at least {}",
            raw.len(),
            KEY2_LEN + MIN_WKC_LEN
        ));
    }
    let (kc, wkc) = raw.split_at(KEY2_LEN);
    if wkc.len() > MAX_WKC_LEN {
        return Err(format!(
            "the wrapped client key is {} bytes long, at most {MAX_WKC_LEN} are allowed",
            wkc.len()
        ));
    }
    let declared = usize::from(u16::from_be_bytes([wkc[wkc.len() - 2], wkc[wkc.len() - 1]]));
    if declared != wkc.len() {
        return Err(format!(
            "the wrapped client key says it is {declared} bytes long but is {} bytes",
            wkc.len()
        ));
    }
    let key = Key2::from_slice(kc).ok_or_else(|| "bad client key length".to_owned())?;
    Ok((key, wkc.to_vec()))
}

/// Parses a 128-byte `struct key` in base64 PEM form with `label`: a tls-crypt-v2 server key
/// (`openvpn --genkey tls-crypt-v2-server`) or an auth-token key (`--genkey auth-token`).
pub(crate) fn key1_pem(bytes: &[u8], label: &str) -> Result<Key1, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the key file is not text".to_owned())?;
    if label == TLS_CRYPT_V2_SERVER_LABEL
        && text.contains(&format!("-----BEGIN {TLS_CRYPT_V2_CLIENT_LABEL}-----"))
    {
        return Err(
            "this is a tls-crypt-v2 *client* key; the server needs the server key that the \
             client keys were made with (openvpn --genkey tls-crypt-v2-server server.key)"
                .to_owned(),
        );
    }
    let b64 = pem_body(text, label).map_err(|e| e.to_string())?;
    let raw = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| "the key body is not valid base64".to_owned())?,
    );
    let arr: &[u8; 128] = raw
        .as_slice()
        .try_into()
        .map_err(|_| format!("the key is {} bytes long, expected 128", raw.len()))?;
    Ok(Key1::from_bytes(arr))
}

/// Parses one `AB:CD:...` SHA-256 fingerprint (32 colon-separated hex bytes).
pub(crate) fn fingerprint(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 32 || parts.iter().any(|p| p.len() != 2) {
        return Err(format!(
            "'{s}' is not a SHA-256 fingerprint (32 hex bytes separated by ':')"
        ));
    }
    let mut out = [0u8; 32];
    for (o, p) in out.iter_mut().zip(parts) {
        *o = u8::from_str_radix(p, 16)
            .map_err(|_| format!("'{s}' is not a SHA-256 fingerprint: '{p}' is not hex"))?;
    }
    Ok(out)
}

/// Parses the body of an inline `<peer-fingerprint>` block: one fingerprint a line, blank lines
/// and `#`/`;` comment lines skipped.
pub(crate) fn fingerprint_lines(text: &str) -> Result<Vec<[u8; 32]>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        out.push(fingerprint(line)?);
    }
    if out.is_empty() {
        return Err("the block holds no fingerprint".to_owned());
    }
    Ok(out)
}

/// Parses an auth-user-pass file or block: username on line 1, password (optional) on line 2.
pub(crate) fn user_pass(bytes: &[u8]) -> Result<AuthUserPass, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| "the credentials are not valid UTF-8".to_owned())?;
    let mut lines = text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l));
    let username = lines.next().unwrap_or("").to_owned();
    if username.is_empty() {
        return Err("no username on the first line".to_owned());
    }
    let password = lines.next().filter(|p| !p.is_empty()).map(str::to_owned);
    Ok(AuthUserPass::File { username, password })
}

/// Checks that `bytes` holds at least one PEM block whose label ends with `label_suffix`
/// (e.g. "CERTIFICATE", "PRIVATE KEY").
pub(crate) fn check_pem(bytes: &[u8], label_suffix: &str, what: &str) -> Result<(), String> {
    let text = String::from_utf8_lossy(bytes);
    let found = text.lines().any(|l| {
        l.trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|r| r.strip_suffix("-----"))
            .is_some_and(|label| label.ends_with(label_suffix))
    });
    if found {
        Ok(())
    } else {
        Err(format!(
            "no PEM '-----BEGIN ...{label_suffix}-----' block found: expected {what} in PEM form"
        ))
    }
}

/// Checks a private key: PEM, and not encrypted (no passphrase support yet).
pub(crate) fn check_private_key(bytes: &[u8]) -> Result<(), String> {
    check_pem(bytes, "PRIVATE KEY", "a private key")?;
    let text = String::from_utf8_lossy(bytes);
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(
            "the private key is encrypted with a passphrase, which is not supported yet; \
                    decrypt it with 'openssl pkey -in KEY -out KEY.plain'"
                .to_owned(),
        );
    }
    Ok(())
}

/// A client's `key`: like [`check_private_key`], but a PKCS#8 key encrypted with a passphrase
/// (`ENCRYPTED PRIVATE KEY`, what `openssl pkey -aes256` writes) is accepted (true): it is
/// decrypted before connecting with the `askpass` password or a prompt.
pub(crate) fn check_client_private_key(bytes: &[u8]) -> Result<bool, String> {
    let text = String::from_utf8_lossy(bytes);
    if let Some(start) = text.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let body = &text[start + "-----BEGIN ENCRYPTED PRIVATE KEY-----".len()..];
        let complete = body
            .find("-----END ENCRYPTED PRIVATE KEY-----")
            .is_some_and(|end| {
                let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .is_ok_and(|der| der.first() == Some(&0x30))
            });
        if !complete {
            return Err("the encrypted private key is not a complete PEM block".to_owned());
        }
        return Ok(true);
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(
            "the private key uses OpenSSL's legacy PEM encryption, which is not supported; \
             convert it to encrypted PKCS#8 with 'openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY \
             -out KEY.p8' (or decrypt it with 'openssl pkey -in KEY -out KEY.plain')"
                .to_owned(),
        );
    }
    check_private_key(bytes).map(|()| false)
}

#[cfg(test)]
pub(crate) mod tests {

    #[test]
    fn client_keys_may_be_encrypted_pkcs8_only() {
        let enc =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert_eq!(check_client_private_key(enc), Ok(true));
        let legacy = b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert!(
            check_client_private_key(legacy)
                .unwrap_err()
                .contains("pkcs8 -topk8")
        );
        assert!(
            check_private_key(enc).is_err(),
            "servers still refuse encrypted keys"
        );
    }
    use super::*;

    /// A tls-crypt-v2 client key file with a WKc of `wkc_len` bytes whose length field says
    /// `declared`.
    pub(crate) fn make_tc2_key(wkc_len: usize, declared: u16) -> String {
        let mut raw: Vec<u8> = (0..KEY2_LEN).map(|i| i as u8).collect();
        let mut wkc = vec![0xabu8; wkc_len - 2];
        wkc.extend_from_slice(&declared.to_be_bytes());
        raw.extend_from_slice(&wkc);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
        let mut text = format!("-----BEGIN {TLS_CRYPT_V2_CLIENT_LABEL}-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            text.push_str(std::str::from_utf8(chunk).unwrap());
            text.push('\n');
        }
        text.push_str(&format!("-----END {TLS_CRYPT_V2_CLIENT_LABEL}-----\n"));
        text
    }

    #[test]
    fn tls_crypt_v2_ok() {
        let (k, wkc) = tls_crypt_v2_client_key(make_tc2_key(299, 299).as_bytes()).unwrap();
        assert_eq!(k.as_bytes()[5], 5);
        assert_eq!(wkc.len(), 299);
        assert_eq!(&wkc[297..], &[0x01, 0x2b]);
    }

    #[test]
    fn tls_crypt_v2_bad_length_field() {
        let e = tls_crypt_v2_client_key(make_tc2_key(299, 300).as_bytes()).unwrap_err();
        assert!(e.contains("300"), "{e}");
        let e = tls_crypt_v2_client_key(make_tc2_key(100, 100).as_bytes()).unwrap_err();
        assert!(e.contains("at least"), "{e}");
        let e = tls_crypt_v2_client_key(make_tc2_key(1100, 1100).as_bytes()).unwrap_err();
        assert!(e.contains("1024"), "{e}");
        let e = tls_crypt_v2_client_key(b"-----BEGIN OpenVPN tls-crypt-v2 server key-----\n")
            .unwrap_err();
        assert!(e.contains("server"), "{e}");
        assert!(tls_crypt_v2_client_key(b"junk").is_err());
    }

    #[test]
    fn fingerprints() {
        let fp = ["ab"; 32].join(":");
        assert_eq!(fingerprint(&fp).unwrap(), [0xab; 32]);
        assert_eq!(fingerprint(&fp.to_uppercase()).unwrap(), [0xab; 32]);
        assert!(fingerprint("ab:cd").is_err());
        assert!(fingerprint(&["zz"; 32].join(":")).is_err());
        let block = format!("# comment\n\n  {fp}\n; other\n{}\n", ["01"; 32].join(":"));
        assert_eq!(
            fingerprint_lines(&block).unwrap(),
            vec![[0xab; 32], [1; 32]]
        );
        assert!(fingerprint_lines("# nothing\n").is_err());
    }

    #[test]
    fn credentials() {
        assert_eq!(
            user_pass(b"alice\r\ns3cret\r\n").unwrap(),
            AuthUserPass::File {
                username: "alice".into(),
                password: Some("s3cret".into())
            }
        );
        assert_eq!(
            user_pass(b"bob\n").unwrap(),
            AuthUserPass::File {
                username: "bob".into(),
                password: None
            }
        );
        assert!(user_pass(b"\npw\n").is_err());
        assert!(user_pass(b"").is_err());
    }

    #[test]
    fn pem_checks() {
        let cert = b"junk\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(check_pem(cert, "CERTIFICATE", "a certificate").is_ok());
        assert!(check_pem(b"AAAA", "CERTIFICATE", "a certificate").is_err());
        assert!(check_private_key(b"-----BEGIN EC PRIVATE KEY-----\nx\n").is_ok());
        assert!(check_private_key(b"-----BEGIN PRIVATE KEY-----\nx\n").is_ok());
        let e = check_private_key(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n").unwrap_err();
        assert!(e.contains("encrypted"));
        assert!(check_private_key(cert).is_err());
    }
}
