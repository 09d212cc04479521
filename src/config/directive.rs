//! What the client and the server parser share: the view of one directive ([`Dir`]), file
//! arguments ([`FileArg`]), and [`Ctx`], which knows the file being parsed, reads the files it
//! refers to and turns bad arguments into [`ProfileError`]s that name file, line and directive.
//! Directives whose meaning is the same on both sides (`data-ciphers`, `auth`, `tls-version-min`,
//! `verify-x509-name`, ...) are parsed here once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::lexer::RawDirective;
use super::parser::{FileLoader, ProfileError};
use super::profile::{CertRole, VerifyX509Name, Warning, X509NameKind};
use crate::proto::keys::{Cipher, Digest, KeyDirection};

pub(super) type Res<T> = Result<T, ProfileError>;

/// One directive being handled: a view over a [`RawDirective`] (or a `setenv opt` sub-directive).
#[derive(Clone, Copy)]
pub(super) struct Dir<'a> {
    pub(super) line: usize,
    pub(super) name: &'a str,
    pub(super) args: &'a [String],
    pub(super) inline: Option<&'a str>,
}

impl<'a> Dir<'a> {
    /// The view of a whole raw directive.
    pub(super) fn of(raw: &'a RawDirective) -> Self {
        Self {
            line: raw.line,
            name: &raw.name,
            args: &raw.args,
            inline: raw.inline.as_deref(),
        }
    }

    /// A directive with no arguments, to name a line in a later message.
    pub(super) fn at(line: usize, name: &'a str) -> Self {
        Self {
            line,
            name,
            args: &[],
            inline: None,
        }
    }
}

/// A file argument: a path or the text of an inline block.
#[derive(Clone, Debug)]
pub(super) enum Source {
    Path(String),
    Inline(String),
}

/// Where a file argument was given.
#[derive(Clone, Debug)]
pub(super) struct FileArg {
    pub(super) line: usize,
    pub(super) directive: String,
    pub(super) source: Source,
}

/// Whether a directive was recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Handled {
    Yes,
    Unknown,
}

/// The file being parsed, its loader and its inline blocks; the argument helpers.
pub(super) struct Ctx<'a> {
    pub(super) file: PathBuf,
    pub(super) loader: &'a dyn FileLoader,
    /// Inline blocks by name (last one wins), for `[inline]` file arguments.
    pub(super) blocks: HashMap<String, String>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(source: &Path, loader: &'a dyn FileLoader) -> Self {
        Self {
            file: source.to_owned(),
            loader,
            blocks: HashMap::new(),
        }
    }

    pub(super) fn err(&self, d: Dir<'_>, message: impl Into<String>) -> ProfileError {
        ProfileError::Directive {
            file: self.file.clone(),
            line: d.line,
            directive: d.name.to_owned(),
            message: message.into(),
        }
    }

    /// A warning about `d`.
    pub(super) fn warning(&self, d: Dir<'_>, message: impl Into<String>) -> Warning {
        Warning {
            file: self.file.clone(),
            line: d.line,
            directive: d.name.to_owned(),
            message: message.into(),
        }
    }

    pub(super) fn incomplete(&self, message: impl Into<String>) -> ProfileError {
        ProfileError::Incomplete {
            file: self.file.clone(),
            message: message.into(),
        }
    }

    /// Checks the argument count (blocks count as one argument).
    pub(super) fn nargs(&self, d: Dir<'_>, min: usize, max: usize) -> Res<()> {
        let n = d.args.len() + usize::from(d.inline.is_some());
        if n < min {
            return Err(self.err(
                d,
                if min == max {
                    format!("needs {min} argument(s), got {n}")
                } else {
                    format!("needs at least {min} argument(s), got {n}")
                },
            ));
        }
        if n > max {
            return Err(self.err(
                d,
                match max {
                    0 => format!("takes no arguments, got {n}"),
                    _ => format!("takes at most {max} argument(s), got {n}"),
                },
            ));
        }
        Ok(())
    }

    pub(super) fn no_inline(&self, d: Dir<'_>) -> Res<()> {
        if d.inline.is_some() {
            return Err(self.err(d, "cannot be given as an inline <block>"));
        }
        Ok(())
    }

    pub(super) fn number<T: FromStr>(&self, d: Dir<'_>, what: &str, s: &str) -> Res<T> {
        s.parse()
            .map_err(|_| self.err(d, format!("{what} '{s}' is not a number")))
    }

    pub(super) fn seconds(&self, d: Dir<'_>, s: &str) -> Res<Duration> {
        Ok(Duration::from_secs(self.number(d, "value", s)?))
    }

    pub(super) fn port(&self, d: Dir<'_>, s: &str) -> Res<u16> {
        let n: u32 = self.number(d, "port", s)?;
        match u16::try_from(n) {
            Ok(p) if p != 0 => Ok(p),
            _ => Err(self.err(d, format!("port '{s}' is out of range (1-65535)"))),
        }
    }

    /// The file argument of `ca`, `cert`, ...: the block text, a path, or `[inline]`.
    pub(super) fn file_arg(&self, d: Dir<'_>) -> Res<FileArg> {
        let source = match (d.inline, d.args.first()) {
            (Some(body), _) => Source::Inline(body.to_owned()),
            (None, Some(a)) if a == "[inline]" => match self.blocks.get(d.name) {
                Some(body) => Source::Inline(body.clone()),
                None => {
                    return Err(self.err(
                        d,
                        format!(
                            "'[inline]' given but the profile has no <{0}> block",
                            d.name
                        ),
                    ));
                }
            },
            (None, Some(a)) if a.is_empty() => return Err(self.err(d, "empty file name")),
            (None, Some(a)) => Source::Path(a.clone()),
            (None, None) => return Err(self.err(d, "needs a file name or an inline block")),
        };
        Ok(FileArg {
            line: d.line,
            directive: d.name.to_owned(),
            source,
        })
    }

    /// Reads a file argument's bytes.
    pub(super) fn load(&self, f: &FileArg) -> Res<Vec<u8>> {
        match &f.source {
            Source::Inline(body) => Ok(body.as_bytes().to_vec()),
            Source::Path(p) => self.loader.load(Path::new(p)).map_err(|e| {
                self.file_err(
                    f,
                    format!(
                        "cannot read '{}': {e}",
                        self.loader.display_path(Path::new(p)).display()
                    ),
                )
            }),
        }
    }

    /// Reads a file argument and decodes it with `decode`; a decoding error names the file.
    pub(super) fn load_with<T>(
        &self,
        f: &FileArg,
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Res<T> {
        let bytes = zeroize::Zeroizing::new(self.load(f)?);
        decode(&bytes).map_err(|m| self.file_err(f, format!("{}: {m}", Self::describe(f))))
    }

    pub(super) fn file_err(&self, f: &FileArg, message: impl Into<String>) -> ProfileError {
        ProfileError::Directive {
            file: self.file.clone(),
            line: f.line,
            directive: f.directive.clone(),
            message: message.into(),
        }
    }

    /// Names the source of a file argument in messages.
    pub(super) fn describe(f: &FileArg) -> String {
        match &f.source {
            Source::Path(p) => format!("'{p}'"),
            Source::Inline(_) => format!("the inline <{}> block", f.directive),
        }
    }

    pub(super) fn cert_role(&self, d: Dir<'_>, s: &str) -> Res<CertRole> {
        match s {
            "server" => Ok(CertRole::Server),
            "client" => Ok(CertRole::Client),
            x => Err(self.err(d, format!("unknown role '{x}' (server or client)"))),
        }
    }

    pub(super) fn key_dir(&self, d: Dir<'_>, s: &str) -> Res<KeyDirection> {
        match s {
            "0" => Ok(KeyDirection::Normal),
            "1" => Ok(KeyDirection::Inverse),
            "bidirectional" | "bi" => Ok(KeyDirection::Bidirectional),
            x => Err(self.err(d, format!("key direction '{x}' must be 0 or 1"))),
        }
    }

    pub(super) fn mtu(&self, d: Dir<'_>, s: &str) -> Res<u16> {
        let n: u16 = self.number(d, "MTU", s)?;
        if n < 576 {
            return Err(self.err(d, format!("MTU {n} is too small (at least 576)")));
        }
        Ok(n)
    }

    /// `auth DIGEST` (`none` is checked against the ciphers once all directives are read).
    pub(super) fn auth_digest(&self, d: Dir<'_>) -> Res<Digest> {
        self.nargs(d, 1, 1)?;
        d.args[0].parse().map_err(|e| {
            self.err(
                d,
                format!("{e}: use SHA1, SHA256, SHA512 (the same digest as the server)"),
            )
        })
    }

    /// `data-ciphers` / `ncp-ciphers`: the supported ciphers of the list, in order; `?name`
    /// entries that are not supported are skipped with a warning.
    pub(super) fn data_ciphers(&self, d: Dir<'_>, warns: &mut Vec<Warning>) -> Res<Vec<Cipher>> {
        self.nargs(d, 1, 1)?;
        let mut list = Vec::new();
        for item in d.args[0].split(':').filter(|s| !s.is_empty()) {
            let (optional, name) = match item.strip_prefix('?') {
                Some(n) => (true, n),
                None => (false, item),
            };
            if name.eq_ignore_ascii_case("none") {
                return Err(self.err(d, "cipher 'none' disables encryption and is refused"));
            }
            match name.parse::<Cipher>() {
                Ok(c) if !list.contains(&c) => list.push(c),
                Ok(_) => {}
                Err(_) if optional => {
                    warns.push(self.warning(
                        d,
                        format!("optional cipher '{name}' is not supported, skipped"),
                    ));
                }
                Err(_) => {
                    return Err(self.err(
                        d,
                        match super::tls_options::legacy_cipher_advice(name) {
                            Some(advice) => format!("{advice} (or prefix it with '?' to skip it)"),
                            None => format!(
                                "cipher '{name}' is not supported (prefix it with '?' to skip it)"
                            ),
                        },
                    ));
                }
            }
        }
        if list.is_empty() {
            return Err(self.err(d, "no supported cipher in the list"));
        }
        if d.name == "ncp-ciphers" {
            warns.push(self.warning(d, "deprecated name of 'data-ciphers'"));
        }
        Ok(list)
    }

    /// `data-ciphers-fallback CIPHER`.
    pub(super) fn data_ciphers_fallback(&self, d: Dir<'_>) -> Res<Cipher> {
        self.nargs(d, 1, 1)?;
        let a = &d.args[0];
        if a.eq_ignore_ascii_case("none") {
            return Err(self.err(d, "cipher 'none' disables encryption and is refused"));
        }
        a.parse().map_err(|_| {
            self.err(
                d,
                super::tls_options::legacy_cipher_advice(a)
                    .unwrap_or_else(|| format!("cipher '{a}' is not supported")),
            )
        })
    }

    /// `tls-version-min V ['or-highest']`: "1.2" or "1.3" (1.0 and 1.1 are raised to 1.2).
    pub(super) fn tls_version_min(&self, d: Dir<'_>, warns: &mut Vec<Warning>) -> Res<String> {
        self.nargs(d, 1, 2)?;
        self.no_inline(d)?;
        let a = d.args;
        let or_highest = match a.get(1).map(String::as_str) {
            None => false,
            Some("or-highest") => true,
            Some(x) => {
                return Err(self.err(d, format!("unknown flag '{x}' (only 'or-highest')")));
            }
        };
        let v = match a[0].as_str() {
            "1.0" | "1.1" | "1.2" => "1.2",
            "1.3" => "1.3",
            v if or_highest => {
                warns.push(
                    self.warning(d, format!("unknown version '{v}', using the highest (1.3)")),
                );
                "1.3"
            }
            v => {
                return Err(self.err(
                    d,
                    format!("unknown TLS version '{v}' (expected 1.0, 1.1, 1.2 or 1.3)"),
                ));
            }
        };
        Ok(v.to_owned())
    }

    /// `tls-version-max V`: "1.2" or "1.3".
    pub(super) fn tls_version_max(&self, d: Dir<'_>) -> Res<String> {
        self.nargs(d, 1, 1)?;
        self.no_inline(d)?;
        let a = d.args;
        match a[0].as_str() {
            "1.2" | "1.3" => Ok(a[0].clone()),
            "1.0" | "1.1" => Err(self.err(
                d,
                format!(
                    "TLS {} is not supported (rustls speaks only TLS 1.2 and 1.3): remove this \
                     line, and if the server is limited to TLS {} too, allow TLS 1.2 there \
                     ('tls-version-min 1.2', no 'tls-version-max' below 1.2)",
                    a[0], a[0]
                ),
            )),
            v => Err(self.err(
                d,
                format!("unknown TLS version '{v}' (expected 1.2 or 1.3)"),
            )),
        }
    }

    /// `verify-x509-name NAME [subject|name|name-prefix]`.
    pub(super) fn verify_x509_name(&self, d: Dir<'_>) -> Res<VerifyX509Name> {
        self.nargs(d, 1, 2)?;
        self.no_inline(d)?;
        let a = d.args;
        let kind = match a.get(1).map(String::as_str) {
            None | Some("subject") => X509NameKind::Subject,
            Some("name") => X509NameKind::Name,
            Some("name-prefix") => X509NameKind::NamePrefix,
            Some(t) => {
                return Err(self.err(
                    d,
                    format!("unknown type '{t}' (expected subject, name or name-prefix)"),
                ));
            }
        };
        if a[0].is_empty() {
            return Err(self.err(d, "empty name"));
        }
        Ok(VerifyX509Name {
            name: a[0].clone(),
            kind,
        })
    }
}
