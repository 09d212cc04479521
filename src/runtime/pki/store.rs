//! [`PkiDir`]: a CA kept in a directory (layout in the module doc of `pki`).
//!
//! `index.txt` has one tab-separated line per certificate ever issued:
//!
//! ```text
//! STATUS  KIND    SERIAL  NOT_AFTER  REVOKED_AT  NAME
//! V       server  5A01..  1790000000 -           server
//! R       client  1F22..  1790000000 1760000000  alice
//! ```
//!
//! STATUS is `V` (valid) or `R` (revoked), SERIAL upper-case hex, the times Unix seconds. Lines
//! starting with `#` are comments. There is no lock: run one command at a time on a directory.

use std::path::{Path, PathBuf};

use super::issue::{self, Ca};
use super::{
    CertKind, Entry, Issued, KeyAlgo, PkiError, Status, check_name, io_err, make_dir, now_unix,
    write_new, write_replace,
};

const INDEX: &str = "index.txt";
const INDEX_HEADER: &str = "# ferrovpn PKI index (tab-separated): STATUS KIND SERIAL NOT_AFTER \
                            REVOKED_AT NAME; times in Unix seconds\n";

/// A CA kept in a directory, with the certificates it issued.
#[derive(Debug)]
pub struct PkiDir {
    dir: PathBuf,
    entries: Vec<Entry>,
}

impl PkiDir {
    /// The per-user PKI directory: `$XDG_DATA_HOME/ferrovpn/pki`, else
    /// `~/.local/share/ferrovpn/pki` (`./ferrovpn-pki` when there is no home directory).
    pub fn default_dir() -> PathBuf {
        let xdg = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .map(|h| h.join(".local").join("share"));
        match xdg.or(home) {
            Some(base) => base.join("ferrovpn").join("pki"),
            None => PathBuf::from("ferrovpn-pki"),
        }
    }

    /// Creates a CA named `ca_name` in `dir` (created if needed, 0700). Refuses if a CA is there.
    pub fn init(dir: &Path, ca_name: &str, algo: KeyAlgo) -> Result<Self, PkiError> {
        let ca_name = ca_name.trim();
        if ca_name.is_empty() || ca_name.len() > 64 || ca_name.chars().any(char::is_control) {
            return Err(PkiError::BadName {
                name: ca_name.to_owned(),
                why: "a CA name must be 1 to 64 printable characters",
            });
        }
        if dir.join("ca.crt").exists() || dir.join("ca.key").exists() {
            return Err(PkiError::CaExists {
                dir: dir.to_owned(),
            });
        }
        make_dir(dir, 0o700)?;
        make_dir(&dir.join("issued"), 0o755)?;
        make_dir(&dir.join("private"), 0o700)?;
        make_dir(&dir.join("revoked"), 0o700)?;
        let now = now_unix();
        let (crt, key) = issue::new_ca(ca_name, algo, now)?;
        let key_path = dir.join("ca.key");
        write_new(&key_path, key.as_bytes(), 0o600)?;
        let crt_path = dir.join("ca.crt");
        if let Err(e) = write_new(&crt_path, crt.as_bytes(), 0o644) {
            let _ = std::fs::remove_file(&key_path);
            return Err(e);
        }
        let pki = Self {
            dir: dir.to_owned(),
            entries: Vec::new(),
        };
        pki.save_index()?;
        // An empty list from the start: a server with `crl-verify` needs the file to exist.
        pki.crl()?;
        Ok(pki)
    }

    /// Opens the CA in `dir`.
    pub fn open(dir: &Path) -> Result<Self, PkiError> {
        for missing in ["ca.crt", "ca.key"] {
            if !dir.join(missing).exists() {
                return Err(PkiError::NoCa {
                    dir: dir.to_owned(),
                    missing,
                });
            }
        }
        let path = dir.join(INDEX);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        Ok(Self {
            dir: dir.to_owned(),
            entries: parse_index(&text, &path)?,
        })
    }

    /// Issues a `kind` certificate for `name` with a new `algo` key, valid for `days` days.
    /// Refuses a name that a valid (unrevoked) certificate has.
    pub fn issue(
        &mut self,
        kind: CertKind,
        name: &str,
        algo: KeyAlgo,
        days: u32,
    ) -> Result<Issued, PkiError> {
        check_name(name)?;
        if days == 0 {
            return Err(PkiError::Generate {
                what: format!("the {kind} certificate '{name}'"),
                why: "the validity must be at least one day".into(),
            });
        }
        if let Some(e) = self.valid(name) {
            return Err(PkiError::Duplicate {
                name: name.to_owned(),
                serial: e.serial.clone(),
            });
        }
        let ca = self.load_ca()?;
        let serial = loop {
            let s = issue::random_serial();
            let hex = hex::encode_upper(&s);
            if !self.entries.iter().any(|e| e.serial == hex) {
                break s;
            }
        };
        let now = now_unix();
        let (crt, key, not_after) = issue::new_leaf(&ca, kind, name, algo, days, &serial, now)?;
        let cert_path = self.cert_path(name);
        let key_path = self.key_path(name);
        write_new(&key_path, key.as_bytes(), 0o600)?;
        if let Err(e) = write_new(&cert_path, crt.as_bytes(), 0o644) {
            let _ = std::fs::remove_file(&key_path);
            return Err(e);
        }
        let serial = hex::encode_upper(&serial);
        self.entries.push(Entry {
            name: name.to_owned(),
            kind,
            serial: serial.clone(),
            status: Status::Valid,
            not_after,
            revoked_at: None,
        });
        if let Err(e) = self.save_index() {
            self.entries.pop();
            let _ = std::fs::remove_file(&key_path);
            let _ = std::fs::remove_file(&cert_path);
            return Err(e);
        }
        Ok(Issued {
            cert_path,
            key_path,
            serial,
        })
    }

    /// Revokes the valid certificate `name`, rewrites `crl.pem`, and moves its certificate and
    /// key to `revoked/NAME-SERIAL.{crt,key}` (so the name can be issued again).
    pub fn revoke(&mut self, name: &str) -> Result<(), PkiError> {
        check_name(name)?;
        let Some(i) = self
            .entries
            .iter()
            .position(|e| e.name == name && e.status == Status::Valid)
        else {
            return Err(PkiError::NotFound {
                name: name.to_owned(),
                dir: self.dir.clone(),
            });
        };
        let ca = self.load_ca()?;
        let now = now_unix();
        let before = self.entries[i].clone();
        self.entries[i].status = Status::Revoked;
        self.entries[i].revoked_at = Some(now);
        let written = super::crl::make_crl(&ca, &self.entries, now)
            .and_then(|crl| self.save_index().map(|()| crl));
        let crl = match written {
            Ok(c) => c,
            Err(e) => {
                self.entries[i] = before;
                return Err(e);
            }
        };
        write_replace(&self.crl_path(), crl.as_bytes(), 0o644)?;
        let moved = format!("{name}-{}", before.serial);
        let revoked = self.dir.join("revoked");
        make_dir(&revoked, 0o700)?;
        for (from, to) in [
            (self.cert_path(name), revoked.join(format!("{moved}.crt"))),
            (self.key_path(name), revoked.join(format!("{moved}.key"))),
        ] {
            if from.exists() {
                std::fs::rename(&from, &to).map_err(io_err(&from))?;
            }
        }
        Ok(())
    }

    /// Writes `crl.pem` (every revoked certificate, valid for [`super::CRL_DAYS`] days) and
    /// returns its path. Run it again before that time is up.
    pub fn crl(&self) -> Result<PathBuf, PkiError> {
        let ca = self.load_ca()?;
        let crl = super::crl::make_crl(&ca, &self.entries, now_unix())?;
        let path = self.crl_path();
        write_replace(&path, crl.as_bytes(), 0o644)?;
        Ok(path)
    }

    /// Every certificate issued, in order of issue.
    pub fn list(&self) -> Vec<Entry> {
        self.entries.clone()
    }

    /// The PKI directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `ca.crt`.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// `crl.pem`.
    pub fn crl_path(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }

    /// `issued/NAME.crt` (of the valid certificate `name`, if there is one).
    pub fn cert_path(&self, name: &str) -> PathBuf {
        self.dir.join("issued").join(format!("{name}.crt"))
    }

    /// `private/NAME.key`.
    pub fn key_path(&self, name: &str) -> PathBuf {
        self.dir.join("private").join(format!("{name}.key"))
    }

    fn valid(&self, name: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.name == name && e.status == Status::Valid)
    }

    fn load_ca(&self) -> Result<Ca, PkiError> {
        let crt_path = self.ca_cert_path();
        let key_path = self.dir.join("ca.key");
        let crt = std::fs::read(&crt_path).map_err(io_err(&crt_path))?;
        let key =
            zeroize::Zeroizing::new(std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?);
        issue::load_ca(&crt, &crt_path, &key, &key_path)
    }

    fn save_index(&self) -> Result<(), PkiError> {
        let mut s = String::from(INDEX_HEADER);
        for e in &self.entries {
            let status = match e.status {
                Status::Valid => "V",
                Status::Revoked => "R",
            };
            let revoked = e
                .revoked_at
                .map_or_else(|| "-".to_owned(), |t| t.to_string());
            s.push_str(&format!(
                "{status}\t{}\t{}\t{}\t{revoked}\t{}\n",
                e.kind, e.serial, e.not_after, e.name
            ));
        }
        write_replace(&self.dir.join(INDEX), s.as_bytes(), 0o644)
    }
}

fn parse_index(text: &str, path: &Path) -> Result<Vec<Entry>, PkiError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |why: String| PkiError::BadIndex {
            path: path.to_owned(),
            line: n + 1,
            why,
        };
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let [status, kind, serial, not_after, revoked_at, name] = f[..] else {
            return Err(bad(format!(
                "expected 6 tab-separated fields, found {}",
                f.len()
            )));
        };
        let status = match status {
            "V" => Status::Valid,
            "R" => Status::Revoked,
            s => return Err(bad(format!("status '{s}' is neither V nor R"))),
        };
        let kind = match kind {
            "server" => CertKind::Server,
            "client" => CertKind::Client,
            k => return Err(bad(format!("kind '{k}' is neither server nor client"))),
        };
        if serial.is_empty() || hex::decode(serial).is_err() {
            return Err(bad(format!("serial '{serial}' is not hex")));
        }
        let not_after = not_after
            .parse()
            .map_err(|_| bad(format!("'{not_after}' is not a time")))?;
        let revoked_at = match revoked_at {
            "-" => None,
            t => Some(t.parse().map_err(|_| bad(format!("'{t}' is not a time")))?),
        };
        if (status == Status::Revoked) != revoked_at.is_some() {
            return Err(bad(
                "a revocation time goes with status R, and only with it".into(),
            ));
        }
        check_name(name).map_err(|e| bad(e.to_string()))?;
        out.push(Entry {
            name: name.to_owned(),
            kind,
            serial: serial.to_ascii_uppercase(),
            status,
            not_after,
            revoked_at,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use x509_parser::prelude::*;

    use super::super::test_util::TempDir;
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn der_of(path: &Path) -> Vec<u8> {
        let bytes = std::fs::read(path).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes).unwrap();
        pem.contents
    }

    fn crl_serials(path: &Path) -> Vec<String> {
        let der = der_of(path);
        let (_, crl) = parse_x509_crl(&der).unwrap();
        crl.iter_revoked_certificates()
            .map(|r| hex::encode_upper(r.raw_serial()))
            .collect()
    }

    #[test]
    fn round_trip() {
        let tmp = TempDir::new("roundtrip");
        let dir = tmp.0.join("pki");
        let mut pki = PkiDir::init(&dir, "test CA", KeyAlgo::EcdsaP256).unwrap();
        assert_eq!(mode(&dir.join("ca.key")), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert!(crl_serials(&dir.join("crl.pem")).is_empty());
        assert!(matches!(
            PkiDir::init(&dir, "again", KeyAlgo::EcdsaP256),
            Err(PkiError::CaExists { .. })
        ));

        let s = pki
            .issue(CertKind::Server, "server", KeyAlgo::EcdsaP256, 30)
            .unwrap();
        let a = pki
            .issue(CertKind::Client, "alice", KeyAlgo::EcdsaP256, 30)
            .unwrap();
        assert_eq!(mode(&s.key_path), 0o600);
        assert_eq!(mode(&a.key_path), 0o600);
        assert_ne!(s.serial, a.serial);
        assert!(matches!(
            pki.issue(CertKind::Client, "alice", KeyAlgo::EcdsaP256, 30),
            Err(PkiError::Duplicate { .. })
        ));
        assert!(matches!(
            pki.issue(CertKind::Client, "server", KeyAlgo::EcdsaP256, 30),
            Err(PkiError::Duplicate { .. })
        ));
        for bad in ["", "a/b", "../x", "with space"] {
            assert!(matches!(
                pki.issue(CertKind::Client, bad, KeyAlgo::EcdsaP256, 30),
                Err(PkiError::BadName { .. })
            ));
        }

        // Reopened, the index reads back the same.
        let mut pki = PkiDir::open(&dir).unwrap();
        let list = pki.list();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].name, "alice");
        assert_eq!(list[1].kind, CertKind::Client);
        assert_eq!(list[1].serial, a.serial);
        assert_eq!(list[1].status, Status::Valid);
        assert!(list[1].not_after > now_unix() + 29 * 86_400);

        pki.revoke("alice").unwrap();
        assert!(matches!(
            pki.revoke("alice"),
            Err(PkiError::NotFound { .. })
        ));
        assert_eq!(crl_serials(&dir.join("crl.pem")), vec![a.serial.clone()]);
        assert!(!a.cert_path.exists() && !a.key_path.exists());
        let moved = dir.join("revoked").join(format!("alice-{}.key", a.serial));
        assert_eq!(mode(&moved), 0o600);

        // A revoked name can be issued again; the CRL keeps the old serial.
        let a2 = pki
            .issue(CertKind::Client, "alice", KeyAlgo::EcdsaP256, 30)
            .unwrap();
        assert_ne!(a2.serial, a.serial);
        let pki = PkiDir::open(&dir).unwrap();
        let list = pki.list();
        assert_eq!(list.len(), 3);
        assert_eq!(list[1].status, Status::Revoked);
        assert!(list[1].revoked_at.is_some());
        assert_eq!(list[2].status, Status::Valid);
        let crl = pki.crl().unwrap();
        assert_eq!(crl_serials(&crl), vec![a.serial]);
    }

    #[test]
    fn open_without_ca() {
        let tmp = TempDir::new("noca");
        assert!(matches!(
            PkiDir::open(&tmp.0),
            Err(PkiError::NoCa {
                missing: "ca.crt",
                ..
            })
        ));
    }

    #[test]
    fn bad_index_is_reported_with_its_line() {
        let tmp = TempDir::new("badindex");
        let dir = tmp.0.join("pki");
        PkiDir::init(&dir, "test CA", KeyAlgo::EcdsaP256).unwrap();
        std::fs::write(dir.join(INDEX), "# x\nV\tclient\tZZ\t1\t-\tbob\n").unwrap();
        let e = PkiDir::open(&dir).unwrap_err();
        assert!(matches!(e, PkiError::BadIndex { line: 2, .. }), "{e}");
    }

    /// Extensions as OpenVPN expects them, for each key algorithm.
    #[test]
    fn certificate_extensions() {
        let tmp = TempDir::new("ext");
        for (i, algo) in [KeyAlgo::EcdsaP256, KeyAlgo::Rsa2048]
            .into_iter()
            .enumerate()
        {
            let dir = tmp.0.join(format!("pki{i}"));
            let mut pki = PkiDir::init(&dir, "ext CA", algo).unwrap();
            let s = pki
                .issue(CertKind::Server, "vpn.example", algo, 10)
                .unwrap();
            let c = pki.issue(CertKind::Client, "bob", algo, 10).unwrap();

            let ca_der = der_of(&dir.join("ca.crt"));
            let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
            assert!(ca.basic_constraints().unwrap().unwrap().value.ca);
            let ku = ca.key_usage().unwrap().unwrap().value;
            assert!(ku.key_cert_sign() && ku.crl_sign());
            assert_eq!(
                ca.subject()
                    .iter_common_name()
                    .next()
                    .unwrap()
                    .as_str()
                    .unwrap(),
                "ext CA"
            );

            for (path, server) in [(&s.cert_path, true), (&c.cert_path, false)] {
                let der = der_of(path);
                let (_, x) = X509Certificate::from_der(&der).unwrap();
                assert_eq!(x.issuer().as_raw(), ca.subject().as_raw());
                assert!(!x.basic_constraints().unwrap().unwrap().value.ca);
                let eku = x.extended_key_usage().unwrap().unwrap().value;
                assert_eq!((eku.server_auth, eku.client_auth), (server, !server));
                let ku = x.key_usage().unwrap().unwrap().value;
                assert!(ku.digital_signature());
                assert_eq!(ku.key_encipherment(), algo == KeyAlgo::Rsa2048);
                assert!(!ku.key_cert_sign());
                let raw = x.raw_serial();
                assert!(raw.len() <= 20 && raw[0] & 0x80 == 0 && raw[0] != 0);
                let san = x.subject_alternative_name().unwrap();
                if server {
                    let names = &san.unwrap().value.general_names;
                    assert_eq!(names, &vec![GeneralName::DNSName("vpn.example")]);
                } else {
                    assert!(san.is_none());
                }
            }
        }
    }
}
