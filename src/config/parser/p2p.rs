//! Point-to-point profiles without a server: static-key mode (`secret`, `ifconfig LOCAL REMOTE`),
//! the classic two-gateway set-up. The directives are collected while parsing and turned into a
//! [`StaticKeyMode`] when the profile has `secret` and none of `client`/`pull`/`tls-client`.

use std::net::Ipv4Addr;

use super::super::directive::{Dir, FileArg, Res};
use super::super::material;
use super::super::profile::{Profile, StaticKeyMode};
use super::Parser;
use crate::proto::keys::KeyDirection;

/// What a profile said that matters only without a server.
#[derive(Default)]
pub(super) struct P2pDirectives {
    /// `secret FILE [DIRECTION]` (or `<secret>`): line, file, direction argument.
    secret: Option<(usize, FileArg, Option<KeyDirection>)>,
    /// `ifconfig LOCAL REMOTE`: line and the two arguments as written (checked once the profile
    /// turns out to be point-to-point).
    ifconfig: Option<(usize, String, String)>,
    /// `nobind`.
    pub(super) nobind: bool,
    /// `float`.
    pub(super) float: bool,
}

impl P2pDirectives {
    pub(super) fn is_static_key(&self) -> bool {
        self.secret.is_some()
    }
}

impl Parser<'_> {
    /// `secret FILE [0|1]`.
    pub(super) fn p2p_secret(&mut self, d: Dir<'_>) -> Res<()> {
        self.nargs(d, 1, 2)?;
        let file = self.file_arg(d)?;
        let dir = match d.args.get(1) {
            Some(s) if d.inline.is_none() => Some(self.key_dir(d, s)?),
            _ => None,
        };
        self.p2p.secret = Some((d.line, file, dir));
        Ok(())
    }

    /// `ifconfig LOCAL REMOTE`: used in point-to-point mode, ignored (with a warning) by a client
    /// that pulls its addresses.
    pub(super) fn p2p_ifconfig(&mut self, d: Dir<'_>) -> Res<()> {
        self.nargs(d, 2, 2)?;
        self.p2p.ifconfig = Some((d.line, d.args[0].clone(), d.args[1].clone()));
        Ok(())
    }

    /// A client that pulls its addresses ignores `ifconfig`.
    pub(super) fn p2p_ifconfig_ignored(&mut self) {
        if let Some((line, _, _)) = self.p2p.ifconfig.take() {
            let d = Dir {
                line,
                name: "ifconfig",
                args: &[],
                inline: None,
            };
            self.warn(d, "ignored: a client gets its addresses from the server");
        }
    }

    fn p2p_addresses(&self) -> Res<Option<(Ipv4Addr, Ipv4Addr)>> {
        let Some((line, local, remote)) = &self.p2p.ifconfig else {
            return Ok(None);
        };
        let d = Dir {
            line: *line,
            name: "ifconfig",
            args: &[],
            inline: None,
        };
        let addr = |s: &String| {
            s.parse::<Ipv4Addr>().map_err(|_| {
                self.err(
                    d,
                    format!("'{s}' is not an IPv4 address (ifconfig LOCAL REMOTE)"),
                )
            })
        };
        Ok(Some((addr(local)?, addr(remote)?)))
    }

    /// Builds a static-key profile (called instead of the client checks).
    pub(super) fn finish_static_key(mut self) -> Res<Profile> {
        let (line, file, dir) = self.p2p.secret.clone().expect("static-key profile");
        let d = Dir {
            line,
            name: "secret",
            args: &[],
            inline: None,
        };
        if self.client || self.profile.pull || self.tls_client {
            return Err(self.err(
                d,
                "static-key mode has no TLS and no server: it cannot be combined with 'client', \
                 'pull' or 'tls-client' (remove 'secret' to use TLS)",
            ));
        }
        if let Some((_, ping, restart)) = self.common.keepalive {
            self.profile.ping = Some(ping);
            self.profile.ping_restart = Some(restart);
        }
        self.finish_dev()?;
        if !self.global_remotes.is_empty() || !self.connections.is_empty() {
            self.finish_remotes()?;
        }
        self.finish_ciphers()?;
        let Some(cipher) = self.profile.data_ciphers_fallback.filter(|c| !c.is_aead()) else {
            return Err(self.err(
                d,
                "static-key mode needs a CBC 'cipher' on both peers, for example 'cipher \
                 AES-256-CBC' (OpenVPN's default there is BF-CBC, which ferrovpn cannot do; \
                 AEAD ciphers do not exist in static-key mode)",
            ));
        };
        let bytes = self.load(&file)?;
        let key = material::static_key(&bytes)
            .map_err(|m| self.file_err(&file, format!("{}: {m}", super::Ctx::describe(&file))))?;
        let direction = dir
            .or(self.common.key_direction)
            .unwrap_or(KeyDirection::Bidirectional);
        let ifconfig = self.p2p_addresses()?;
        if ifconfig.is_none() {
            self.warn(
                d,
                "no 'ifconfig LOCAL REMOTE': the device gets no address, add one on both peers",
            );
        }
        self.profile.static_key = Some(StaticKeyMode {
            key,
            direction,
            cipher,
            ifconfig,
            local_port: (!self.p2p.nobind).then_some(self.ce.port),
            float: self.p2p.float,
        });
        Ok(self.profile)
    }
}
