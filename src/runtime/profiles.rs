//! The profile store: imported profiles, self-contained (files inlined), kept in the per-user
//! data directory (`$XDG_DATA_HOME/ferrovpn/profiles`, else `~/.local/share/ferrovpn/profiles`),
//! so `connect NAME` works from anywhere.

use std::path::{Path, PathBuf};

use crate::config::{FsLoader, inline_profile, parse_profile};

/// The store's directory (`FERROVPN_PROFILES_DIR` overrides it, for tests and packaging).
pub fn store_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("FERROVPN_PROFILES_DIR") {
        return PathBuf::from(d);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("/var/lib"));
    data.join("ferrovpn/profiles")
}

fn valid_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a usable profile name (letters, digits, '.', '_', '-'; at most 64)"
        ))
    }
}

fn path_of(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.ovpn"))
}

/// Imports `file` as `name` (default: the file name without `.ovpn`): checks it parses, inlines
/// the files it refers to, and stores it with mode 0600. Returns the stored path.
pub fn import(
    dir: &Path,
    file: &Path,
    name: Option<&str>,
    replace: bool,
) -> Result<PathBuf, String> {
    let name = match name {
        Some(n) => n.to_string(),
        None => file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .ok_or_else(|| {
                format!(
                    "{}: no file name to use as the profile name",
                    file.display()
                )
            })?,
    };
    valid_name(&name)?;
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let loader = FsLoader::for_profile(file);
    let base = loader.base_dir.clone();
    let base = std::fs::canonicalize(&base).unwrap_or(base);
    let inlined =
        inline_profile(&text, &loader, &base).map_err(|e| format!("{}: {e}", file.display()))?;
    // The stored profile must parse on its own.
    let dest = path_of(dir, &name);
    parse_profile(&inlined, &dest, &FsLoader::new(&base)).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if dest.exists() && !replace {
        return Err(format!(
            "a profile named '{name}' exists ({}); remove it first or use --replace",
            dest.display()
        ));
    }
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(inlined.as_bytes())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    Ok(dest)
}

/// Stored profiles: `(name, remotes)`.
pub fn list(dir: &Path) -> Vec<(String, Vec<String>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<String>)> = entries
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let name = p.file_stem()?.to_string_lossy().into_owned();
            if p.extension()? != "ovpn" || name.starts_with('.') {
                return None;
            }
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let remotes = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("remote "))
                .map(str::to_owned)
                .collect();
            Some((name, remotes))
        })
        .collect();
    out.sort();
    out
}

/// The stored profile's path, if `name` is a stored profile.
pub fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    valid_name(name).ok()?;
    let p = path_of(dir, name);
    p.is_file().then_some(p)
}

/// Removes a stored profile.
pub fn remove(dir: &Path, name: &str) -> Result<(), String> {
    valid_name(name)?;
    let p = path_of(dir, name);
    std::fs::remove_file(&p).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("no stored profile named '{name}'"),
        _ => format!("{}: {e}", p.display()),
    })
}

/// What `connect`/`proxy`/`exec` open for `arg`: an existing file, else a stored profile.
pub fn resolve(arg: &Path) -> PathBuf {
    if arg.exists() {
        return arg.to_path_buf();
    }
    arg.to_str()
        .and_then(|n| find(&store_dir(), n))
        .unwrap_or_else(|| arg.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(valid_name("work-vpn_2.eu").is_ok());
        for bad in ["", "../x", ".hidden", "a/b", "a b"] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
    }
}
