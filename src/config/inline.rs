//! Turning a profile that refers to files (`ca ca.crt`, `tls-crypt ta.key`) into one
//! self-contained profile with inline blocks, so it can be stored and moved (`profiles import`).

use std::path::Path;

use super::lexer::tokenize;
use super::parser::FileLoader;

/// Directives whose file argument becomes an inline block.
const INLINABLE: &[&str] = &[
    "ca",
    "cert",
    "key",
    "extra-certs",
    "tls-auth",
    "tls-crypt",
    "tls-crypt-v2",
    "crl-verify",
    "secret",
    "dh",
    "pkcs12",
];

/// `text` with every referenced key or certificate file inlined. `auth-user-pass FILE` keeps
/// referring to the file (credentials are not copied), made absolute with `base`.
pub fn inline_profile(text: &str, loader: &dyn FileLoader, base: &Path) -> Result<String, String> {
    let mut out = String::with_capacity(text.len() * 2);
    let mut in_block: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(tag) = &in_block {
            out.push_str(line);
            out.push('\n');
            if trimmed == format!("</{tag}>") {
                in_block = None;
            }
            continue;
        }
        if let Some(tag) = trimmed.strip_prefix('<').and_then(|t| t.strip_suffix('>'))
            && !tag.starts_with('/')
        {
            in_block = Some(tag.to_string());
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let tokens = tokenize(trimmed).map_err(|e| format!("line {}: {e}", i + 1))?;
        let Some(first) = tokens.first() else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let name = first.trim_start_matches("--");
        let arg = tokens.get(1).map(String::as_str);
        match (name, arg) {
            (n, Some(file))
                if INLINABLE.contains(&n)
                    && file != "[inline]"
                    && !(n == "dh" && file == "none") =>
            {
                let bytes = loader
                    .load(Path::new(file))
                    .map_err(|e| format!("line {}: '{n} {file}': {e}", i + 1))?;
                let content = String::from_utf8(bytes)
                    .map_err(|_| format!("line {}: '{n} {file}': not a text file", i + 1))?;
                out.push_str(&format!("<{n}>\n{}", content.trim_end()));
                out.push_str(&format!("\n</{n}>\n"));
                if n == "tls-auth"
                    && let Some(dir) = tokens.get(2)
                {
                    out.push_str(&format!("key-direction {dir}\n"));
                }
            }
            ("auth-user-pass", Some(file)) if !Path::new(file).is_absolute() => {
                out.push_str(&format!("auth-user-pass {}\n", base.join(file).display()));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::path::PathBuf;

    struct Mem;
    impl FileLoader for Mem {
        fn load(&self, path: &Path) -> io::Result<Vec<u8>> {
            match path.to_str() {
                Some("ca.crt") => Ok(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec()),
                Some("ta.key") => Ok(b"-----BEGIN OpenVPN Static key V1-----\n00\n-----END OpenVPN Static key V1-----\n".to_vec()),
                _ => Err(io::Error::new(io::ErrorKind::NotFound, "no such file")),
            }
        }
    }

    #[test]
    fn files_become_blocks_and_blocks_stay() {
        let text = "client\nremote 198.18.0.1 1194\nca ca.crt\ntls-auth ta.key 1\nauth-user-pass up.txt\n<cert>\nX\n</cert>\n";
        let out = inline_profile(text, &Mem, &PathBuf::from("/etc/p")).unwrap();
        assert!(
            out.contains(
                "<ca>\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n</ca>\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("<tls-auth>\n-----BEGIN OpenVPN Static key V1-----"),
            "{out}"
        );
        assert!(out.contains("</tls-auth>\nkey-direction 1\n"), "{out}");
        assert!(out.contains("auth-user-pass /etc/p/up.txt\n"), "{out}");
        assert!(out.contains("<cert>\nX\n</cert>\n"), "{out}");
        assert!(!out.contains("ca ca.crt"));
        let err = inline_profile("key missing.key\n", &Mem, Path::new("/")).unwrap_err();
        assert!(
            err.contains("line 1") && err.contains("missing.key"),
            "{err}"
        );
    }
}
