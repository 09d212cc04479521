//! Wire views: any datagram as an OpenVPN packet, and the TCP de-framer fed arbitrary chunks.

use ferrovpn::proto::wire::{
    ControlPacket, ControlWrap, Opcode, TcpDeframer, data_header, data_v1_header, data_v2_header,
    frame, split_first_byte, split_wkc,
};

/// One datagram through every view. Invariants: a parsed control packet emits the same bytes
/// (and `emitted_len` says how many); a data header re-encodes to the bytes it came from;
/// `split_wkc` splits without losing bytes; the plain "wrap" passes control packets unchanged.
pub fn datagram(data: &[u8]) {
    if let Some(&first) = data.first()
        && let Ok((op, kid)) = split_first_byte(first)
    {
        assert!(kid < 8);
        assert_eq!(Opcode::from_u8(first >> 3), Some(op));
    }
    if let Ok(p) = ControlPacket::parse(data) {
        let mut out = Vec::new();
        p.emit(&mut out);
        assert_eq!(out, data, "control packet does not round-trip");
        assert_eq!(p.emitted_len(), data.len());
        assert_eq!(ControlPacket::parse(&out).as_ref(), Ok(&p));
    }
    if let Ok((op, kid, peer, len)) = data_header(data) {
        assert!(op.is_data());
        match peer {
            Some(peer) => {
                assert_eq!(len, 4);
                assert_eq!(data_v2_header(kid, peer), data[..4]);
            }
            None => {
                assert_eq!(len, 1);
                assert_eq!(data_v1_header(kid), data[0]);
            }
        }
    }
    if let Ok((packet, wkc)) = split_wkc(data) {
        assert_eq!(packet.len() + wkc.len(), data.len());
        assert!(wkc.len() >= 2);
    }
    let mut out = Vec::new();
    if ControlWrap::none().unwrap(data, &mut out).is_ok() {
        assert_eq!(out, data);
    }
}

/// A TCP byte stream. `data[0]` picks the de-framer's limit, `data[1]` the chunk pattern; the
/// rest is the stream. Invariants: chunked and whole-stream feeding give the same packets and
/// the same error; re-framing the packets gives back the consumed prefix of the stream.
pub fn tcp_stream(data: &[u8]) {
    let [limit, pattern, stream @ ..] = data else {
        return;
    };
    let max_len = match limit % 4 {
        0 => 65535,
        1 => 1500,
        2 => 64,
        _ => 1 + usize::from(*limit),
    };
    let whole = drain_all(max_len, std::iter::once(stream));
    // Chunk sizes cycle through 1..=pattern+1, so single bytes and splits inside the length
    // prefix are exercised.
    let step = usize::from(*pattern) + 1;
    let mut chunks = Vec::new();
    let mut rest = stream;
    let mut n = 1;
    while !rest.is_empty() {
        let take = n.min(rest.len());
        let (a, b) = rest.split_at(take);
        chunks.push(a);
        rest = b;
        n = n % step + 1;
    }
    let chunked = drain_all(max_len, chunks.into_iter());
    assert_eq!(whole, chunked, "chunking changed the de-framed packets");
    let mut reframed = Vec::new();
    for p in &whole.0 {
        assert!(!p.is_empty() && p.len() <= max_len);
        frame(p, &mut reframed).expect("a de-framed packet frames again");
    }
    assert_eq!(reframed, stream[..reframed.len()], "re-framing differs");
    if whole.1.is_none() {
        assert_eq!(whole.2, stream.len() - reframed.len(), "buffered count");
    }
}

type Drained = (Vec<Vec<u8>>, Option<String>, usize);

fn drain_all<'a>(max_len: usize, chunks: impl Iterator<Item = &'a [u8]>) -> Drained {
    let mut d = TcpDeframer::with_max_len(max_len);
    let mut packets = Vec::new();
    let mut err = None;
    for c in chunks {
        d.push(c);
        while let Some(r) = d.next_packet() {
            match r {
                Ok(p) => packets.push(p),
                Err(e) => {
                    assert!(err.is_none(), "a second error after poisoning");
                    err = Some(e.to_string());
                }
            }
        }
    }
    assert_eq!(d.is_poisoned(), err.is_some());
    (packets, err, d.buffered())
}
