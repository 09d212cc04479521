//! Writing key files in OpenVPN's formats (`ferrovpn genkey`), the mirror of [`super::material`]:
//! keys made here work in OpenVPN 2.6, and OpenVPN's work here.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::material::{AUTH_TOKEN_LABEL, TLS_CRYPT_V2_CLIENT_LABEL, TLS_CRYPT_V2_SERVER_LABEL};
use crate::proto::keys::{KEY2_LEN, Key2};
use crate::proto::server::TlsCryptV2ServerKey;
use crate::proto::server::tls_crypt_v2::{METADATA_TIMESTAMP, METADATA_USER};

/// Which key `genkey` makes (OpenVPN's `--genkey` type names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `secret`: a static key (tls-auth, tls-crypt, static-key mode).
    Secret,
    /// `tls-crypt-v2-server`.
    TlsCryptV2Server,
    /// `tls-crypt-v2-client` (needs the server key).
    TlsCryptV2Client,
    /// `auth-token`: the `auth-gen-token-secret` key.
    AuthToken,
}

impl std::str::FromStr for KeyKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "secret" | "tls-auth" | "tls-crypt" => Self::Secret,
            "tls-crypt-v2-server" => Self::TlsCryptV2Server,
            "tls-crypt-v2-client" => Self::TlsCryptV2Client,
            "auth-token" => Self::AuthToken,
            other => {
                return Err(format!(
                    "unknown key type '{other}': expected secret, tls-crypt-v2-server, \
                     tls-crypt-v2-client or auth-token"
                ));
            }
        })
    }
}

/// An OpenVPN static key file ("OpenVPN Static key V1", 16 hex bytes per line).
pub fn static_key_file(key: &Key2) -> String {
    let mut s = String::from(
        "#\n# 2048 bit OpenVPN static key\n#\n-----BEGIN OpenVPN Static key V1-----\n",
    );
    for chunk in key.as_bytes().chunks(16) {
        s.push_str(&hex::encode(chunk));
        s.push('\n');
    }
    s.push_str("-----END OpenVPN Static key V1-----\n");
    s
}

/// A PEM block of `bytes` with `label`, 64 base64 characters per line (as OpenVPN writes).
pub fn pem(label: &str, bytes: &[u8]) -> String {
    let b64 = Zeroizing::new(STANDARD.encode(bytes));
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// Makes a key file of `kind` from randomness `fill`. A client key needs the server key file's
/// text and takes `metadata` (user metadata; default: the creation time `now_unix`).
pub fn generate(
    kind: KeyKind,
    fill: &dyn Fn(&mut [u8]),
    server_key: Option<&[u8]>,
    metadata: Option<&[u8]>,
    now_unix: u64,
) -> Result<String, String> {
    Ok(match kind {
        KeyKind::Secret => {
            let mut b = Zeroizing::new([0u8; KEY2_LEN]);
            fill(&mut b[..]);
            static_key_file(&Key2::from_bytes(&b))
        }
        KeyKind::TlsCryptV2Server | KeyKind::AuthToken => {
            let mut b = Zeroizing::new([0u8; 128]);
            fill(&mut b[..]);
            let label = if kind == KeyKind::AuthToken {
                AUTH_TOKEN_LABEL
            } else {
                TLS_CRYPT_V2_SERVER_LABEL
            };
            pem(label, &b[..])
        }
        KeyKind::TlsCryptV2Client => {
            let server = server_key
                .ok_or("a tls-crypt-v2-client key needs the server key (--server-key FILE)")?;
            let sk = super::material::key1_pem(server, TLS_CRYPT_V2_SERVER_LABEL)
                .map_err(|e| format!("server key: {e}"))?;
            let sk = TlsCryptV2ServerKey::from_bytes(sk.as_bytes());
            let mut b = Zeroizing::new([0u8; KEY2_LEN]);
            fill(&mut b[..]);
            let kc = Key2::from_bytes(&b);
            let mut meta = Vec::new();
            match metadata {
                Some(m) => {
                    meta.push(METADATA_USER);
                    meta.extend_from_slice(m);
                }
                None => {
                    meta.push(METADATA_TIMESTAMP);
                    meta.extend_from_slice(&now_unix.to_be_bytes());
                }
            }
            let wkc = sk
                .wrap(&kc, &meta)
                .map_err(|e| format!("wrapping the client key: {e} (metadata too long?)"))?;
            let mut body = Zeroizing::new(Vec::with_capacity(KEY2_LEN + wkc.len()));
            body.extend_from_slice(kc.as_bytes());
            body.extend_from_slice(&wkc);
            pem(TLS_CRYPT_V2_CLIENT_LABEL, &body)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(b: &mut [u8]) {
        for (i, x) in b.iter_mut().enumerate() {
            *x = i as u8 ^ 0x5a;
        }
    }

    #[test]
    fn generated_keys_read_back_with_the_readers() {
        let secret = generate(KeyKind::Secret, &fill, None, None, 0).unwrap();
        let k = Key2::parse_static_key_file(&secret).unwrap();
        let mut want = [0u8; KEY2_LEN];
        fill(&mut want);
        assert_eq!(k.as_bytes(), &want);
        let server = generate(KeyKind::TlsCryptV2Server, &fill, None, None, 0).unwrap();
        let sk =
            super::super::material::key1_pem(server.as_bytes(), TLS_CRYPT_V2_SERVER_LABEL).unwrap();
        let client = generate(
            KeyKind::TlsCryptV2Client,
            &fill,
            Some(server.as_bytes()),
            Some(b"alice"),
            0,
        )
        .unwrap();
        let (kc, wkc) = super::super::material::tls_crypt_v2_client_key(client.as_bytes()).unwrap();
        assert_eq!(kc.as_bytes(), &want);
        let un = TlsCryptV2ServerKey::from_bytes(sk.as_bytes())
            .unwrap(&wkc)
            .unwrap();
        assert_eq!(un.metadata, b"\0alice");
        assert!(generate(KeyKind::TlsCryptV2Client, &fill, None, None, 0).is_err());
        let token = generate(KeyKind::AuthToken, &fill, None, None, 0).unwrap();
        assert!(super::super::material::key1_pem(token.as_bytes(), AUTH_TOKEN_LABEL).is_ok());
    }

    #[test]
    fn reads_the_server_key_openvpn_made() {
        let server = include_bytes!("../../tests/data/server/tc2-server.key");
        let client = generate(KeyKind::TlsCryptV2Client, &fill, Some(server), None, 77).unwrap();
        let (_, wkc) = super::super::material::tls_crypt_v2_client_key(client.as_bytes()).unwrap();
        let sk = super::super::material::key1_pem(server, TLS_CRYPT_V2_SERVER_LABEL).unwrap();
        let un = TlsCryptV2ServerKey::from_bytes(sk.as_bytes())
            .unwrap(&wkc)
            .unwrap();
        assert_eq!(un.metadata, [&[1u8][..], &77u64.to_be_bytes()].concat());
    }

    #[test]
    fn unwraps_the_client_key_openvpn_made() {
        let server = include_bytes!("../../tests/data/server/tc2-server.key");
        let client = include_bytes!("../../tests/data/server/tc2-client.key");
        let (_, wkc) = super::super::material::tls_crypt_v2_client_key(client).unwrap();
        let sk = super::super::material::key1_pem(server, TLS_CRYPT_V2_SERVER_LABEL).unwrap();
        let un = TlsCryptV2ServerKey::from_bytes(sk.as_bytes()).unwrap(&wkc);
        assert!(
            un.is_ok(),
            "OpenVPN's client key does not unwrap: {:?}",
            un.err()
        );
    }
}
