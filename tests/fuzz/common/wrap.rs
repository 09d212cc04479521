//! tls-auth / tls-crypt / tls-crypt-v2 unwrapping with fixed keys, the server's WKc unwrap
//! included.
//!
//! The input first goes to the receiver as a raw datagram; then it is read as a script: make a
//! packet and wrap it, deliver a wrapped packet (again: a replay), deliver it with one byte
//! changed, deliver raw bytes. Invariants: an unwrapped packet is exactly what was wrapped; no
//! packet is accepted twice; a packet with any byte changed is refused; a packet newer than every
//! accepted one is accepted.

use ferrovpn::proto::keys::{Digest, Key2, KeyDirection};
use ferrovpn::proto::wire::{ControlPacket, ControlWrap, Opcode, Role, split_wkc};

use super::Cursor;
use super::fixtures::keys;

const NOW_UNIX: u32 = 1_700_000_000;

const OPCODES: [Opcode; 7] = [
    Opcode::SoftResetV1,
    Opcode::ControlV1,
    Opcode::AckV1,
    Opcode::HardResetClientV2,
    Opcode::HardResetServerV2,
    Opcode::HardResetClientV3,
    Opcode::ControlWkcV1,
];

/// The receiving side.
enum Receiver {
    Plain(ControlWrap),
    /// tls-crypt-v2 server: the client key comes from the WKc of the first packet carrying one.
    V2Server {
        session: Option<(Key2, ControlWrap)>,
    },
}

impl Receiver {
    /// Unwraps; `Ok(plain)` if accepted.
    fn unwrap(&mut self, wire: &[u8]) -> Result<Vec<u8>, ()> {
        let mut out = Vec::new();
        match self {
            Self::Plain(w) => w.unwrap(wire, &mut out).map_err(drop)?,
            Self::V2Server { session } => {
                let carries = wire
                    .first()
                    .and_then(|b| Opcode::from_u8(b >> 3))
                    .is_some_and(Opcode::carries_wkc);
                let packet = if carries {
                    let (packet, wkc) = split_wkc(wire).map_err(drop)?;
                    let kc = keys().tc2_server.unwrap(wkc).map_err(drop)?;
                    match session {
                        Some((k, _)) if k.as_bytes() == kc.key.as_bytes() => {}
                        Some(_) => return Err(()),
                        None => {
                            let w = ControlWrap::tls_crypt(&kc.key, Role::Server);
                            *session = Some((kc.key, w));
                        }
                    }
                    packet
                } else {
                    wire
                };
                let (_, w) = session.as_mut().ok_or(())?;
                w.unwrap(packet, &mut out).map_err(drop)?;
            }
        }
        // Whatever unwraps must at least not upset the plain parser.
        let _ = ControlPacket::parse(&out);
        Ok(out)
    }

    /// Whether an untouched, newest packet must be accepted.
    fn can_accept(&self, plain: &[u8]) -> bool {
        match self {
            Self::Plain(_) => true,
            Self::V2Server { session } => {
                session.is_some() || Opcode::from_u8(plain[0] >> 3).is_some_and(Opcode::carries_wkc)
            }
        }
    }
}

struct Sent {
    plain: Vec<u8>,
    wire: Vec<u8>,
    accepted: bool,
}

/// The body; see the module doc.
pub fn unwrap(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let k = keys();
    let (mut sender, mut receiver) = match mode % 5 {
        0 => (
            ControlWrap::tls_auth(&k.tls_auth, KeyDirection::Inverse, Digest::Sha256),
            Receiver::Plain(ControlWrap::tls_auth(
                &k.tls_auth,
                KeyDirection::Normal,
                Digest::Sha256,
            )),
        ),
        1 => (
            ControlWrap::tls_auth(&k.tls_auth, KeyDirection::Normal, Digest::Sha1),
            Receiver::Plain(ControlWrap::tls_auth(
                &k.tls_auth,
                KeyDirection::Inverse,
                Digest::Sha1,
            )),
        ),
        2 => (
            ControlWrap::tls_crypt(&k.tls_crypt, Role::Client),
            Receiver::Plain(ControlWrap::tls_crypt(&k.tls_crypt, Role::Server)),
        ),
        3 => (
            ControlWrap::tls_crypt(&k.tls_crypt, Role::Server),
            Receiver::Plain(ControlWrap::tls_crypt(&k.tls_crypt, Role::Client)),
        ),
        _ => (
            ControlWrap::tls_crypt_v2_client(&k.tc2_client.0, k.tc2_client.1.clone())
                .expect("fixture WKc"),
            Receiver::V2Server { session: None },
        ),
    };
    // A raw datagram that unwraps (a captured packet made with the same key) moves the replay
    // window in ways the script does not know: then only the safety checks apply.
    let mut raw_accepted = receiver.unwrap(rest).is_ok();

    let mut c = Cursor::new(rest);
    let mut sent: Vec<Sent> = Vec::new();
    for _ in 0..64 {
        let Some(op) = c.byte() else { break };
        match op % 4 {
            0 => {
                let b = c.byte().unwrap_or(0);
                let opcode = OPCODES[usize::from(b) % OPCODES.len()];
                let ack = opcode == Opcode::AckV1;
                let n = usize::from(c.byte().unwrap_or(0));
                let payload = if ack { &[][..] } else { c.bytes(n) };
                let p = ControlPacket {
                    opcode,
                    key_id: b >> 5,
                    session_id: [b; 8],
                    acks: if ack { vec![u32::from(b)] } else { vec![] },
                    ack_peer_session_id: ack.then_some([!b; 8]),
                    message_id: (!ack).then_some(sent.len() as u32),
                    payload,
                };
                let mut plain = Vec::new();
                p.emit(&mut plain);
                let mut wire = Vec::new();
                sender
                    .wrap(&plain, NOW_UNIX, &mut wire)
                    .expect("wrapping a valid control packet");
                sent.push(Sent {
                    plain,
                    wire,
                    accepted: false,
                });
            }
            1 => {
                let Some(i) = pick(&mut c, sent.len()) else {
                    continue;
                };
                let newest = sent[i + 1..].iter().all(|s| !s.accepted);
                let must = newest
                    && !raw_accepted
                    && !sent[i].accepted
                    && receiver.can_accept(&sent[i].plain);
                match receiver.unwrap(&sent[i].wire) {
                    Ok(out) => {
                        assert_eq!(out, sent[i].plain, "unwrapped packet differs");
                        assert!(!sent[i].accepted, "packet {i} accepted twice");
                        sent[i].accepted = true;
                    }
                    Err(()) => assert!(!must, "newest packet {i} refused"),
                }
            }
            2 => {
                let Some(i) = pick(&mut c, sent.len()) else {
                    continue;
                };
                let pos = usize::from(c.u16().unwrap_or(0)) % sent[i].wire.len();
                let x = c.byte().unwrap_or(1).max(1);
                let mut wire = sent[i].wire.clone();
                wire[pos] ^= x;
                assert!(
                    receiver.unwrap(&wire).is_err(),
                    "packet {i} with byte {pos} changed was accepted"
                );
            }
            _ => {
                let n = usize::from(c.u16().unwrap_or(0) % 2048);
                raw_accepted |= receiver.unwrap(c.bytes(n)).is_ok();
            }
        }
    }
}

fn pick(c: &mut Cursor<'_>, n: usize) -> Option<usize> {
    if n == 0 {
        return None;
    }
    Some(usize::from(c.byte().unwrap_or(0)) % n)
}
