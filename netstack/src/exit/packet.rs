//! What an inbound IP packet is, as far as the exit cares, and the UDP packets it sends back.
//! Pure: bytes in, values out, never a panic on bad input.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IPV4_HEADER_LEN, IPV6_HEADER_LEN, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet,
    Ipv6Repr, TcpPacket, UDP_HEADER_LEN, UdpPacket, UdpRepr,
};

/// The exit's view of one inbound packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// A connection request (SYN without ACK) with valid checksums.
    TcpSyn { src: SocketAddr, dst: SocketAddr },
    /// Any other TCP segment: smoltcp's business.
    Tcp,
    /// A UDP datagram with valid checksums; `payload` indexes the packet.
    Udp {
        src: SocketAddr,
        dst: SocketAddr,
        payload: Range<usize>,
    },
    /// ICMP or ICMPv6 to `dst`.
    Icmp { dst: IpAddr },
    /// Malformed, fragmented or a protocol the exit does not carry.
    Drop,
}

/// Looks at the IP and transport headers.
pub(crate) fn classify(p: &[u8]) -> Class {
    match p.first().map(|b| b >> 4) {
        Some(4) => classify_v4(p).unwrap_or(Class::Drop),
        Some(6) => classify_v6(p).unwrap_or(Class::Drop),
        _ => Class::Drop,
    }
}

fn classify_v4(p: &[u8]) -> Option<Class> {
    let ip = Ipv4Packet::new_checked(p).ok()?;
    // Rejects fragments and bad header checksums.
    let repr = Ipv4Repr::parse(&ip, &ChecksumCapabilities::default()).ok()?;
    let offset = usize::from(ip.header_len());
    let end = offset + repr.payload_len;
    transport(
        repr.next_header,
        IpAddr::V4(repr.src_addr),
        IpAddr::V4(repr.dst_addr),
        p.get(offset..end)?,
        offset,
    )
}

fn classify_v6(p: &[u8]) -> Option<Class> {
    let ip = Ipv6Packet::new_checked(p).ok()?;
    let repr = Ipv6Repr::parse(&ip).ok()?;
    // Extension headers are not followed: they are rare in tunnels and the exit drops them.
    let offset = IPV6_HEADER_LEN;
    let end = offset + repr.payload_len;
    transport(
        repr.next_header,
        IpAddr::V6(repr.src_addr),
        IpAddr::V6(repr.dst_addr),
        p.get(offset..end)?,
        offset,
    )
}

fn transport(
    proto: IpProtocol,
    src: IpAddr,
    dst: IpAddr,
    payload: &[u8],
    offset: usize,
) -> Option<Class> {
    let (s, d) = (IpAddress::from(src), IpAddress::from(dst));
    match proto {
        IpProtocol::Tcp => {
            let tcp = TcpPacket::new_checked(payload).ok()?;
            if tcp.syn() && !tcp.ack() && !tcp.rst() {
                // The SYN starts a host connection: make sure it is genuine.
                if !tcp.verify_checksum(&s, &d) {
                    return None;
                }
                return Some(Class::TcpSyn {
                    src: SocketAddr::new(src, tcp.src_port()),
                    dst: SocketAddr::new(dst, tcp.dst_port()),
                });
            }
            Some(Class::Tcp)
        }
        IpProtocol::Udp => {
            let udp = UdpPacket::new_checked(payload).ok()?;
            let repr = UdpRepr::parse(&udp, &s, &d, &ChecksumCapabilities::default()).ok()?;
            let start = offset + UDP_HEADER_LEN;
            Some(Class::Udp {
                src: SocketAddr::new(src, repr.src_port),
                dst: SocketAddr::new(dst, repr.dst_port),
                payload: start..offset + usize::from(udp.len()),
            })
        }
        IpProtocol::Icmp | IpProtocol::Icmpv6 => Some(Class::Icmp { dst }),
        _ => None,
    }
}

/// Length of the IP and UDP headers in front of a datagram from `src`.
pub(crate) fn udp_header_len(src: IpAddr) -> usize {
    UDP_HEADER_LEN
        + match src {
            IpAddr::V4(_) => IPV4_HEADER_LEN,
            IpAddr::V6(_) => IPV6_HEADER_LEN,
        }
}

/// Writes the IP and UDP headers into `buf`, whose tail after [`udp_header_len`] bytes is
/// already the payload. `None` when the families differ.
pub(crate) fn fill_udp_headers(buf: &mut [u8], src: SocketAddr, dst: SocketAddr) -> Option<()> {
    let payload_len = buf.len().checked_sub(udp_header_len(src.ip()))?;
    let udp = UdpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
    };
    let caps = ChecksumCapabilities::default();
    let (s, d) = (IpAddress::from(src.ip()), IpAddress::from(dst.ip()));
    let ip_len = match (src.ip(), dst.ip()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let repr = Ipv4Repr {
                src_addr: a,
                dst_addr: b,
                next_header: IpProtocol::Udp,
                payload_len: UDP_HEADER_LEN + payload_len,
                hop_limit: 64,
            };
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut *buf), &caps);
            IPV4_HEADER_LEN
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let repr = Ipv6Repr {
                src_addr: a,
                dst_addr: b,
                next_header: IpProtocol::Udp,
                payload_len: UDP_HEADER_LEN + payload_len,
                hop_limit: 64,
            };
            repr.emit(&mut Ipv6Packet::new_unchecked(&mut *buf));
            IPV6_HEADER_LEN
        }
        _ => return None,
    };
    let mut packet = UdpPacket::new_unchecked(&mut buf[ip_len..]);
    udp.emit(&mut packet, &s, &d, payload_len, |_| {}, &caps);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{TcpControl, TcpRepr, TcpSeqNumber};

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
        let h = udp_header_len(src.ip());
        let mut buf = vec![0u8; h + payload.len()];
        buf[h..].copy_from_slice(payload);
        fill_udp_headers(&mut buf, src, dst).unwrap();
        buf
    }

    fn tcp(src: SocketAddr, dst: SocketAddr, control: TcpControl, ack: bool) -> Vec<u8> {
        let repr = TcpRepr {
            src_port: src.port(),
            dst_port: dst.port(),
            control,
            seq_number: TcpSeqNumber(1000),
            ack_number: ack.then_some(TcpSeqNumber(5)),
            window_len: 1000,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        };
        let (IpAddr::V4(a), IpAddr::V4(b)) = (src.ip(), dst.ip()) else {
            unreachable!()
        };
        let ip = Ipv4Repr {
            src_addr: a,
            dst_addr: b,
            next_header: IpProtocol::Tcp,
            payload_len: repr.buffer_len(),
            hop_limit: 64,
        };
        let mut buf = vec![0u8; IPV4_HEADER_LEN + repr.buffer_len()];
        let caps = ChecksumCapabilities::default();
        ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), &caps);
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut buf[IPV4_HEADER_LEN..]),
            &IpAddress::from(src.ip()),
            &IpAddress::from(dst.ip()),
            &caps,
        );
        buf
    }

    #[test]
    fn udp_round_trip_v4_and_v6() {
        for (src, dst) in [
            (sa("10.0.0.2:5000"), sa("127.0.0.1:53")),
            (sa("[2001:db8::2]:5000"), sa("[::1]:53")),
        ] {
            let p = udp(src, dst, b"hello");
            match classify(&p) {
                Class::Udp {
                    src: s,
                    dst: d,
                    payload,
                } => {
                    assert_eq!((s, d), (src, dst));
                    assert_eq!(&p[payload], b"hello");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn corrupt_udp_is_dropped() {
        let mut p = udp(sa("10.0.0.2:5000"), sa("127.0.0.1:53"), b"hello");
        let last = p.len() - 1;
        p[last] ^= 1;
        assert_eq!(classify(&p), Class::Drop);
        assert_eq!(classify(&p[..10]), Class::Drop);
        assert_eq!(classify(&[]), Class::Drop);
        assert_eq!(classify(&[0x50; 40]), Class::Drop);
    }

    #[test]
    fn mixed_families_are_refused() {
        let mut buf = vec![0u8; 100];
        assert!(fill_udp_headers(&mut buf, sa("10.0.0.1:1"), sa("[::1]:1")).is_none());
        assert!(fill_udp_headers(&mut buf[..10], sa("10.0.0.1:1"), sa("10.0.0.2:1")).is_none());
    }

    #[test]
    fn syn_is_told_from_other_segments() {
        let (c, s) = (sa("10.0.0.2:40000"), sa("192.0.2.1:80"));
        assert_eq!(
            classify(&tcp(c, s, TcpControl::Syn, false)),
            Class::TcpSyn { src: c, dst: s }
        );
        assert_eq!(classify(&tcp(c, s, TcpControl::Syn, true)), Class::Tcp);
        assert_eq!(classify(&tcp(c, s, TcpControl::None, true)), Class::Tcp);
        assert_eq!(classify(&tcp(c, s, TcpControl::Rst, false)), Class::Tcp);
        let mut bad = tcp(c, s, TcpControl::Syn, false);
        bad[IPV4_HEADER_LEN + 4] ^= 1;
        assert_eq!(classify(&bad), Class::Drop, "SYN with a bad checksum");
    }
}
