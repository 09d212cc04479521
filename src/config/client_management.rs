//! The client's management directives (`management`, `management-hold`,
//! `management-query-passwords`, ...), as the profile and the command line give them.

use std::net::IpAddr;
use std::path::PathBuf;

use super::ManagementListen;

/// The client's management interface settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientManagement {
    /// `management IP PORT [PWFILE]` / `management PATH unix [PWFILE]`.
    pub listen: Option<ManagementListen>,
    /// The password file (first line is the password).
    pub password_file: Option<PathBuf>,
    /// `management-hold`.
    pub hold: bool,
    /// `management-query-passwords`.
    pub query_passwords: bool,
    /// `management-signal`.
    pub signal: bool,
    /// `management-forget-disconnect`.
    pub forget_disconnect: bool,
    /// `management-log-cache N`.
    pub log_cache: Option<usize>,
}

impl ClientManagement {
    /// Sets `management ARGS` (2 or 3 words). A TCP address other than loopback needs a password
    /// file: OpenVPN only warns, but anyone who can reach the port would control the VPN.
    pub fn set_listen(&mut self, args: &[String]) -> Result<(), String> {
        if !(2..=3).contains(&args.len()) {
            return Err("expects IP PORT [PWFILE] or PATH unix [PWFILE]".into());
        }
        let listen = if args[1] == "unix" {
            ManagementListen::Unix(PathBuf::from(&args[0]))
        } else {
            let port = args[1]
                .parse::<u16>()
                .map_err(|_| format!("'{}' is not a port number", args[1]))?;
            if args[0] == "tunnel" {
                return Err(
                    "listening on the tunnel address ('tunnel') is not supported; use \
                            127.0.0.1 or a unix socket"
                        .into(),
                );
            }
            let loopback = args[0] == "localhost"
                || args[0].parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if !loopback && args.get(2).is_none() {
                return Err(format!(
                    "refusing to listen on {} without a password file: anyone who can reach it \
                     would control the VPN; add one (management {} {} PWFILE) or use 127.0.0.1 \
                     or a unix socket",
                    args[0], args[0], args[1]
                ));
            }
            ManagementListen::Tcp {
                host: args[0].clone(),
                port,
            }
        };
        self.listen = Some(listen);
        self.password_file = args.get(2).map(PathBuf::from);
        Ok(())
    }

    /// Applies one `management*` directive: `Ok(Some(warning))` for those that are accepted but
    /// ignored, `Err` for bad arguments. `None` from the outer option: not a management directive.
    pub fn directive(
        &mut self,
        name: &str,
        args: &[String],
    ) -> Option<Result<Option<&'static str>, String>> {
        let flag = |s: &mut bool| {
            if args.is_empty() {
                *s = true;
                Ok(None)
            } else {
                Err("takes no arguments".to_owned())
            }
        };
        Some(match name {
            "management" => self.set_listen(args).map(|()| None),
            "management-hold" => flag(&mut self.hold),
            "management-query-passwords" => flag(&mut self.query_passwords),
            "management-signal" => flag(&mut self.signal),
            "management-forget-disconnect" => flag(&mut self.forget_disconnect),
            "management-log-cache" => match args {
                [n] => n
                    .parse::<usize>()
                    .map(|n| {
                        self.log_cache = Some(n);
                        None
                    })
                    .map_err(|_| format!("'{n}' is not a number")),
                _ => Err("expects the number of lines".into()),
            },
            "management-client" => Ok(Some(
                "not supported (ferrovpn listens; it does not connect out to the management \
                 client), ignored",
            )),
            "management-up-down"
            | "management-query-remote"
            | "management-query-proxy"
            | "management-client-user"
            | "management-client-group" => Ok(Some(
                "not supported, ignored (a unix management socket is only usable by its owner)",
            )),
            _ => return None,
        })
    }

    /// The warning OpenVPN gives (as an error) when management options come without
    /// `management`.
    pub fn orphan_options(&self) -> bool {
        self.listen.is_none() && (self.hold || self.query_passwords || self.signal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn listen_forms() {
        let mut m = ClientManagement::default();
        m.set_listen(&w(&["127.0.0.1", "7505"])).unwrap();
        assert_eq!(
            m.listen,
            Some(ManagementListen::Tcp {
                host: "127.0.0.1".into(),
                port: 7505
            })
        );
        m.set_listen(&w(&["/run/m.sock", "unix", "/etc/pw"]))
            .unwrap();
        assert_eq!(m.listen, Some(ManagementListen::Unix("/run/m.sock".into())));
        assert_eq!(m.password_file, Some(PathBuf::from("/etc/pw")));
        let e = m.set_listen(&w(&["0.0.0.0", "7505"])).unwrap_err();
        assert!(e.contains("without a password file"), "{e}");
        m.set_listen(&w(&["0.0.0.0", "7505", "pw"])).unwrap();
        assert!(m.set_listen(&w(&["127.0.0.1", "x"])).is_err());
        assert!(m.set_listen(&w(&["tunnel", "7505", "pw"])).is_err());
    }

    #[test]
    fn flags() {
        let mut m = ClientManagement::default();
        assert_eq!(m.directive("management-hold", &[]), Some(Ok(None)));
        assert!(m.orphan_options());
        assert!(m.hold);
        assert!(matches!(
            m.directive("management-hold", &w(&["x"])),
            Some(Err(_))
        ));
        assert!(matches!(
            m.directive("management-client", &[]),
            Some(Ok(Some(_)))
        ));
        assert_eq!(
            m.directive("management-log-cache", &w(&["50"])),
            Some(Ok(None))
        );
        assert_eq!(m.log_cache, Some(50));
        assert_eq!(m.directive("remote", &[]), None);
    }
}
