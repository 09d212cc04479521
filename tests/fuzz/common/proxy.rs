//! The proxy-mode parsers of `ferrovpn-netstack`: SOCKS5 messages, HTTP heads and chunked
//! bodies, DNS answers.

use ferrovpn_netstack::dns::{QueryType, decode_answer, encode_query};
use ferrovpn_netstack::proxy::http::{
    ChunkedDecoder, RequestTarget, encode_upstream_request, parse_request_head,
    parse_response_head, request_body, response_body,
};
use ferrovpn_netstack::proxy::socks5::{
    choose_method, parse_greeting, parse_request, parse_udp_header, parse_user_pass,
};

/// `data[0]` picks the message type. Invariants for the incremental parsers (the server calls
/// them again as bytes arrive): a complete message of `n` bytes parses the same from exactly
/// its `n` bytes, and every shorter prefix asks for more instead of failing.
pub fn socks5(data: &[u8]) {
    let Some((&sel, b)) = data.split_first() else {
        return;
    };
    match sel % 4 {
        0 => {
            incremental(b, parse_greeting);
            if let Ok(Some((m, _))) = parse_greeting(b) {
                let _ = (choose_method(&m, true), choose_method(&m, false));
            }
        }
        1 => incremental(b, parse_user_pass),
        2 => incremental(b, parse_request),
        _ => {
            if let Ok((_, n)) = parse_udp_header(b) {
                assert!(n <= b.len());
                assert_eq!(parse_udp_header(&b[..n]).map(|x| x.1), Ok(n));
            }
        }
    }
}

fn incremental<T, E>(b: &[u8], parse: fn(&[u8]) -> Result<Option<(T, usize)>, E>)
where
    T: PartialEq + std::fmt::Debug,
    E: std::fmt::Debug,
{
    if let Ok(Some((v, n))) = parse(b) {
        assert!(n <= b.len(), "consumed more than given");
        match parse(&b[..n]) {
            Ok(Some((w, m))) => assert!(w == v && m == n, "exact bytes parse differently"),
            other => panic!("exact bytes of a message: {other:?}"),
        }
        for k in 0..n {
            assert!(
                matches!(parse(&b[..k]), Ok(None)),
                "a {k}-byte prefix of a {n}-byte message is not 'need more'"
            );
        }
    }
}

/// `data[0]` picks request head, response head or chunked body. Invariants: a head parses the
/// same from exactly its own bytes; a request re-encoded for upstream parses again, with the
/// same body framing (else the relayed body would be read differently upstream); a chunked
/// body's end is found the same whether fed at once or byte by byte.
pub fn http(data: &[u8]) {
    let Some((&sel, b)) = data.split_first() else {
        return;
    };
    match sel % 3 {
        0 => {
            let Ok(Some(head)) = parse_request_head(b) else {
                return;
            };
            assert!(head.len <= b.len());
            assert_eq!(parse_request_head(&b[..head.len]), Ok(Some(head.clone())));
            let Ok(framing) = request_body(&head) else {
                return;
            };
            let (path, authority) = match &head.target {
                RequestTarget::Absolute {
                    host, port, path, ..
                } => (path.clone(), format!("{host}:{port}")),
                RequestTarget::Origin(p) => (p.clone(), "example.test:80".into()),
                RequestTarget::Authority { .. } | RequestTarget::Asterisk => return,
            };
            let up = encode_upstream_request(&head, &path, &authority);
            let again = match parse_request_head(&up) {
                Ok(Some(h)) => h,
                other => panic!(
                    "upstream request does not parse ({other:?}):\n{}",
                    String::from_utf8_lossy(&up)
                ),
            };
            assert_eq!(again.len, up.len());
            assert_eq!(
                request_body(&again),
                Ok(framing),
                "upstream reads the body differently:\n{}",
                String::from_utf8_lossy(&up)
            );
        }
        1 => {
            let Ok(Some(head)) = parse_response_head(b) else {
                return;
            };
            assert!(head.len <= b.len());
            assert_eq!(parse_response_head(&b[..head.len]), Ok(Some(head.clone())));
            let _ = (response_body("GET", &head), response_body("HEAD", &head));
        }
        _ => {
            let mut whole = ChunkedDecoder::default();
            let r = whole.feed(b);
            let mut bytewise = ChunkedDecoder::default();
            let mut used = 0;
            let mut err = None;
            for chunk in b.chunks(1) {
                if bytewise.is_done() {
                    break;
                }
                match bytewise.feed(chunk) {
                    Ok(n) => used += n,
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            match r {
                Ok(n) => {
                    assert!(err.is_none(), "byte-wise feeding failed: {err:?}");
                    assert_eq!(n, used);
                    assert_eq!(whole.is_done(), bytewise.is_done());
                    assert!(n == b.len() || whole.is_done());
                }
                Err(e) => assert_eq!(Some(e), err),
            }
        }
    }
}

/// A DNS answer to the query whose id is `data[0..2]` (so the id check passes), for A or AAAA
/// by `data[2]`; and the same bytes as a name to query for. Invariant: an encoded query is
/// never taken for an answer.
pub fn dns(data: &[u8]) {
    let [a, b, t, rest @ ..] = data else {
        return;
    };
    let id = u16::from_be_bytes([*a, *b]);
    let qtype = if t & 1 == 0 {
        QueryType::A
    } else {
        QueryType::Aaaa
    };
    if let Ok(ans) = decode_answer(id, qtype, rest) {
        if ans.addrs.is_empty() {
            assert_eq!(ans.ttl, 0);
        }
    }
    let name = String::from_utf8_lossy(rest);
    if let Ok(q) = encode_query(id, &name, qtype) {
        assert!(
            decode_answer(id, qtype, &q).is_err(),
            "a query taken for an answer"
        );
    }
}
