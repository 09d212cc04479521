//! Fixed key material and certificates for the fuzz bodies, taken from the committed test data
//! (`tests/data/vectors/`, `tests/data/server/`) and loaded through the library's own parsers.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ferrovpn::config::{FileLoader, TlsWrap, parse_profile, parse_server_profile};
use ferrovpn::proto::keys::Key2;
use ferrovpn::proto::server::TlsCryptV2ServerKey;

const VEC_A: &str = "a-tls-crypt-udp-aes256gcm-reneg";

/// The files an in-memory profile may refer to, by file name.
pub static FILES: &[(&str, &str)] = &[
    (
        "ca.crt",
        include_str!("../../data/vectors/a-tls-crypt-udp-aes256gcm-reneg/ca.crt"),
    ),
    (
        "client.crt",
        include_str!("../../data/vectors/a-tls-crypt-udp-aes256gcm-reneg/client.crt"),
    ),
    (
        "client.key",
        include_str!("../../data/vectors/a-tls-crypt-udp-aes256gcm-reneg/client.key"),
    ),
    (
        "server.crt",
        include_str!("../../data/vectors/a-tls-crypt-udp-aes256gcm-reneg/server.crt"),
    ),
    (
        "server.key",
        include_str!("../../data/vectors/a-tls-crypt-udp-aes256gcm-reneg/server.key"),
    ),
    (
        "ta.key",
        include_str!("../../data/vectors/a-tls-crypt-udp-aes256gcm-reneg/ta.key"),
    ),
    (
        "tls-auth.key",
        include_str!("../../data/vectors/b-tls-auth-sha256-udp-chacha20/ta.key"),
    ),
    (
        "static.key",
        include_str!("../../data/vectors/e-static-key-udp-aes256cbc-sha256/static.key"),
    ),
    (
        "tc2-client.key",
        include_str!("../../data/server/tc2-client.key"),
    ),
    (
        "tc2-server.key",
        include_str!("../../data/server/tc2-server.key"),
    ),
    (
        "auth-token.key",
        include_str!("../../data/server/auth-token.key"),
    ),
    ("userpass.txt", "alice\nsecret\n"),
];

/// An in-memory file system holding [`FILES`]: any path is looked up by its file name.
pub struct MemFiles;

impl FileLoader for MemFiles {
    fn load(&self, path: &Path) -> io::Result<Vec<u8>> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        FILES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, body)| body.as_bytes().to_vec())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }

    fn display_path(&self, path: &Path) -> PathBuf {
        Path::new("/fuzz").join(path)
    }
}

/// The keys every wrap body uses.
pub struct Keys {
    /// tls-auth key (capture b).
    pub tls_auth: Key2,
    /// tls-crypt key (capture a).
    pub tls_crypt: Key2,
    /// tls-crypt-v2 client key `Kc` and its `WKc`.
    pub tc2_client: (Key2, Vec<u8>),
    /// The tls-crypt-v2 server key that unwraps that `WKc`.
    pub tc2_server: Arc<TlsCryptV2ServerKey>,
}

fn client_wrap(text: &str) -> TlsWrap {
    let p = parse_profile(text, Path::new("keys.ovpn"), &MemFiles).expect("fixture profile");
    p.tls_wrap.expect("fixture profile has a wrap")
}

/// Keys parsed once.
pub fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let base = "client\nremote 198.18.0.1\nca ca.crt\ncert client.crt\nkey client.key\n";
        let TlsWrap::Auth { key: tls_auth, .. } =
            client_wrap(&format!("{base}tls-auth tls-auth.key 1\n"))
        else {
            panic!("tls-auth fixture")
        };
        let TlsWrap::Crypt { key: tls_crypt } = client_wrap(&format!("{base}tls-crypt ta.key\n"))
        else {
            panic!("tls-crypt fixture")
        };
        let TlsWrap::CryptV2 { key, wkc } =
            client_wrap(&format!("{base}tls-crypt-v2 tc2-client.key\n"))
        else {
            panic!("tls-crypt-v2 fixture")
        };
        let server = parse_server_profile(
            "server 198.19.0.0 255.255.255.0\nca ca.crt\ncert server.crt\nkey server.key\n\
             dh none\ntls-crypt-v2 tc2-server.key\n",
            Path::new("server.conf"),
            &MemFiles,
        )
        .expect("fixture server profile");
        let v2 = server.tls_crypt_v2.expect("tls-crypt-v2 server key");
        Keys {
            tls_auth,
            tls_crypt,
            tc2_client: (key, wkc),
            tc2_server: Arc::new(TlsCryptV2ServerKey::from_bytes(v2.key.as_bytes())),
        }
    })
}

/// The contents of a fixture file.
pub fn file(name: &str) -> &'static str {
    FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
        .unwrap_or_else(|| panic!("no fixture {name} (capture {VEC_A})"))
}
