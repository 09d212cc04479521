//! Key-method-2 messages (both directions, and the length probe) and PUSH_REPLY chunks.
//!
//! `data[0]` picks the parser. Invariants: a parsed client message written again parses to the
//! same fields; `message_len` never claims more bytes than there are.

use ferrovpn::config::{PullFilter, PullFilterAction};
use ferrovpn::proto::handshake::key_method2::{
    ClientKeyMessage, message_len, read_client_message, read_server_message, write_server_message,
};
use ferrovpn::proto::handshake::push::{PullPolicy, PushedOptions};

/// The body; see the module doc.
pub fn run(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 4 {
        0 => client_message(rest),
        1 => server_message(rest),
        2 => {
            for client in [true, false] {
                if let Some(n) = message_len(rest, client) {
                    assert!(n <= rest.len(), "message_len beyond the buffer");
                }
            }
        }
        _ => push_reply(sel, rest),
    }
}

fn client_message(b: &[u8]) {
    let Ok(m) = read_client_message(b) else {
        return;
    };
    let msg = ClientKeyMessage {
        pre_master: m.pre_master.clone(),
        random1: m.random1.clone(),
        random2: m.random2.clone(),
    };
    let creds = (!m.username.is_empty() || !m.password.is_empty())
        .then(|| (m.username.as_str(), m.password.as_str()));
    let mut out = Vec::new();
    msg.write(&m.options, creds, &m.peer_info, &mut out);
    let again = read_client_message(&out).expect("a written client message parses");
    assert_eq!(again.options, m.options);
    assert_eq!(*again.username, *m.username);
    assert_eq!(*again.password, *m.password);
    assert_eq!(again.peer_info, m.peer_info);
    assert_eq!(*again.random1, *m.random1);
    assert_eq!(message_len(&out, true), Some(out.len()));
}

fn server_message(b: &[u8]) {
    let Ok(m) = read_server_message(b) else {
        return;
    };
    let mut out = Vec::new();
    write_server_message(&m.random1, &m.random2, &m.options, &mut out);
    let again = read_server_message(&out).expect("a written server message parses");
    assert_eq!(again.options, m.options);
    assert_eq!(*again.random2, *m.random2);
}

/// `PUSH_REPLY` bodies, one chunk per line, under a policy picked by `sel`.
fn push_reply(sel: u8, b: &[u8]) {
    let text = String::from_utf8_lossy(b);
    let policy = PullPolicy {
        filters: if sel & 0x10 != 0 {
            vec![
                PullFilter {
                    action: PullFilterAction::Ignore,
                    prefix: "route".into(),
                },
                PullFilter {
                    action: PullFilterAction::Reject,
                    prefix: "dhcp-option".into(),
                },
            ]
        } else {
            vec![]
        },
        route_nopull: sel & 0x20 != 0,
        allow_compression: sel & 0x40 != 0,
    };
    let mut opts = PushedOptions::default();
    for chunk in text.split('\n').take(64) {
        match opts.apply_chunk(chunk, &policy) {
            Ok(true) => continue,
            Ok(false) | Err(_) => break,
        }
    }
    let _ = (
        opts.dns_addresses(),
        opts.search_domains(),
        opts.split_domains(),
    );
}
