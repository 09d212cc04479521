//! The README stays true: every `ferrovpn` command line in its shell blocks names subcommands
//! and options the binary really has, and every recipe names the test that runs it (a
//! `<!-- tested: tests/FILE.rs FUNCTION -->` line before the block), which must exist.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// `(line number, text)` of every line inside a ```sh block, continuation lines joined.
fn shell_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with("```") {
            in_sh = !in_sh && t == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let code = t.split(" #").next().unwrap_or("").trim();
        let code = if code.starts_with('#') { "" } else { code };
        match pending.take() {
            Some((n, mut acc)) => {
                acc.push(' ');
                acc.push_str(code.trim_end_matches('\\'));
                if code.ends_with('\\') {
                    pending = Some((n, acc));
                } else {
                    out.push((n, acc));
                }
            }
            None if code.ends_with('\\') => {
                pending = Some((i + 1, code.trim_end_matches('\\').to_owned()));
            }
            None if !code.is_empty() => out.push((i + 1, code.to_owned())),
            None => {}
        }
    }
    out
}

/// The arguments after `ferrovpn` (or `cargo run --release --`), if the line runs it.
fn ferrovpn_args(line: &str) -> Option<Vec<String>> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let start = words
        .iter()
        .position(|w| *w == "ferrovpn")
        .map(|i| i + 1)
        .or_else(|| {
            let i = words
                .windows(4)
                .position(|w| w == ["cargo", "run", "--release", "--"])?;
            Some(i + 4)
        })?;
    Some(
        words[start..]
            .iter()
            .take_while(|w| !matches!(**w, "|" | "&&" | ";" | ">" | "&"))
            .map(|w| (*w).to_owned())
            .collect(),
    )
}

struct Help {
    cache: HashMap<Vec<String>, String>,
}

impl Help {
    fn get(&mut self, path: &[String]) -> String {
        self.cache
            .entry(path.to_vec())
            .or_insert_with(|| {
                let out = Command::new(env!("CARGO_BIN_EXE_ferrovpn"))
                    .args(path)
                    .arg("--help")
                    .output()
                    .expect("run ferrovpn --help");
                String::from_utf8_lossy(&out.stdout).into_owned()
            })
            .clone()
    }

    /// Subcommand names listed under "Commands:" in a help text.
    fn subcommands(help: &str) -> Vec<String> {
        help.lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    }
}

#[test]
fn readme_commands_use_real_subcommands_and_options() {
    let text = readme();
    let mut help = Help {
        cache: HashMap::new(),
    };
    let mut checked = 0;
    let mut problems = Vec::new();
    for (n, line) in shell_lines(&text) {
        let Some(args) = ferrovpn_args(&line) else {
            continue;
        };
        checked += 1;
        let mut path: Vec<String> = Vec::new();
        for a in &args {
            let subs = Help::subcommands(&help.get(&path));
            if subs.iter().any(|s| s == a) {
                path.push(a.clone());
            } else {
                break;
            }
        }
        if path.is_empty() {
            problems.push(format!("README.md:{n}: no ferrovpn subcommand in `{line}`"));
            continue;
        }
        let h = help.get(&path);
        for a in args.iter().filter(|a| a.starts_with('-') && *a != "--") {
            let flag = a.split('=').next().unwrap_or(a);
            let listed = h
                .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
                .any(|w| w == flag);
            if !listed {
                problems.push(format!(
                    "README.md:{n}: `ferrovpn {}` has no option {flag} (line: `{line}`)",
                    path.join(" ")
                ));
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} ferrovpn command lines found in README.md"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn readme_recipes_name_tests_that_exist() {
    let text = readme();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut recipes = 0;
    for (i, line) in text.lines().enumerate() {
        let Some(rest) = line.trim().strip_prefix("<!-- tested:") else {
            continue;
        };
        recipes += 1;
        let rest = rest.trim_end_matches("-->").trim();
        for item in rest.split(';') {
            let mut w = item.split_whitespace();
            let (Some(file), Some(func)) = (w.next(), w.next()) else {
                panic!("README.md:{}: malformed tested marker: {line}", i + 1);
            };
            let src = std::fs::read_to_string(root.join(file))
                .unwrap_or_else(|e| panic!("README.md:{}: {file}: {e}", i + 1));
            assert!(
                src.contains(&format!("fn {func}(")),
                "README.md:{}: {file} has no test fn {func}",
                i + 1
            );
        }
        let next = text.lines().nth(i + 1).unwrap_or("");
        assert!(
            next.trim() == "```sh",
            "README.md:{}: a tested marker must stand right before a ```sh block",
            i + 1
        );
    }
    assert!(
        recipes >= 5,
        "README.md has {recipes} tested recipes; one per mode (tunnel, proxy, exec, server, PKI) is expected"
    );
}
