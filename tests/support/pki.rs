//! Test PKI: a CA and leaf certificates made with rcgen, plus OpenVPN's static keys made with
//! `openvpn --genkey`. Everything is written as PEM / OpenVPN key files into a directory.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use super::netns::run_ok;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlg {
    /// ECDSA P-256 with SHA-256 (the default).
    EcdsaP256,
    /// RSA-2048 with PKCS#1 v1.5 SHA-256. rcgen's ring backend cannot generate RSA keys, so the
    /// key comes from aws-lc-rs (already a dependency of the crate) and rcgen only signs with it.
    Rsa2048,
}

/// Paths of the generated files.
#[derive(Clone, Debug)]
pub struct Pki {
    pub dir: PathBuf,
    pub ca_crt: PathBuf,
    /// CN=server, EKU serverAuth, KU digitalSignature+keyEncipherment.
    pub server_crt: PathBuf,
    pub server_key: PathBuf,
    /// CN=client1, EKU clientAuth, KU digitalSignature.
    pub client_crt: PathBuf,
    pub client_key: PathBuf,
    /// CN=rogue-server: a valid certificate from the same CA but with EKU clientAuth only (what a
    /// rogue client presenting its own certificate as a server would have). Must be refused by a
    /// client that checks the server EKU.
    pub rogue_server_crt: PathBuf,
    pub rogue_server_key: PathBuf,
}

fn key_pair(alg: KeyAlg) -> KeyPair {
    match alg {
        KeyAlg::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256"),
        KeyAlg::Rsa2048 => {
            use aws_lc_rs::encoding::AsDer as _;
            let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .expect("RSA-2048 key generation");
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = kp.as_der().expect("PKCS#8");
            KeyPair::try_from(der.as_ref()).expect("rcgen loads the RSA key")
        }
    }
}

fn params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "ferrovpn interop tests");
    p.distinguished_name = dn;
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2099, 12, 31);
    p
}

impl Pki {
    /// Generates the CA and all leaf certificates into `dir` (created if needed).
    pub fn generate(dir: &Path, alg: KeyAlg) -> Pki {
        fs::create_dir_all(dir).expect("pki dir");
        let ca_key = key_pair(alg);
        let mut ca_params = params("ferrovpn test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key).expect("CA");

        let leaf = |cn: &str, eku: ExtendedKeyUsagePurpose, ku: Vec<KeyUsagePurpose>| {
            let key = key_pair(alg);
            let mut p = params(cn);
            p.is_ca = IsCa::ExplicitNoCa;
            p.key_usages = ku;
            p.extended_key_usages = vec![eku];
            p.use_authority_key_identifier_extension = true;
            let cert = p.signed_by(&key, &ca, &ca_key).expect("leaf");
            (cert.pem(), key.serialize_pem())
        };
        let server_ku = || {
            vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ]
        };
        let (server_crt, server_key) =
            leaf("server", ExtendedKeyUsagePurpose::ServerAuth, server_ku());
        let (client_crt, client_key) = leaf(
            "client1",
            ExtendedKeyUsagePurpose::ClientAuth,
            vec![KeyUsagePurpose::DigitalSignature],
        );
        let (rogue_crt, rogue_key) = leaf(
            "rogue-server",
            ExtendedKeyUsagePurpose::ClientAuth,
            server_ku(),
        );

        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            fs::write(&path, pem).expect("write pem");
            path
        };
        Pki {
            dir: dir.to_owned(),
            ca_crt: write("ca.crt", &ca.pem()),
            server_crt: write("server.crt", &server_crt),
            server_key: write("server.key", &server_key),
            client_crt: write("client.crt", &client_crt),
            client_key: write("client.key", &client_key),
            rogue_server_crt: write("rogue-server.crt", &rogue_crt),
            rogue_server_key: write("rogue-server.key", &rogue_key),
        }
    }
}

/// `openvpn --genkey secret PATH`: a 2048-bit static key (tls-auth, tls-crypt, `secret`).
pub fn genkey_secret(path: &Path) {
    run_ok(&["openvpn", "--genkey", "secret", &path.to_string_lossy()]);
}

/// `openvpn --genkey tls-crypt-v2-server PATH`.
pub fn genkey_tls_crypt_v2_server(path: &Path) {
    run_ok(&[
        "openvpn",
        "--genkey",
        "tls-crypt-v2-server",
        &path.to_string_lossy(),
    ]);
}

/// `openvpn --tls-crypt-v2 SERVER --genkey tls-crypt-v2-client PATH`.
pub fn genkey_tls_crypt_v2_client(server_key: &Path, path: &Path) {
    run_ok(&[
        "openvpn",
        "--tls-crypt-v2",
        &server_key.to_string_lossy(),
        "--genkey",
        "tls-crypt-v2-client",
        &path.to_string_lossy(),
    ]);
}
