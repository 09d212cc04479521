//! `mssfix`: clamps the MSS option of TCP SYN packets crossing the tunnel so that TCP segments,
//! once encrypted and wrapped, fit the path without IP fragmentation (OpenVPN's `mss.c` idea).

/// Clamps the MSS of a TCP SYN in `packet` (IPv4 or IPv6) to `max_mss`, fixing the TCP checksum
/// incrementally. Returns whether the packet was changed. Anything else is left untouched.
pub fn clamp_mss(packet: &mut [u8], max_mss: u16) -> bool {
    let Some(&first) = packet.first() else {
        return false;
    };
    let tcp_start = match first >> 4 {
        4 => {
            if packet.len() < 20 || packet[9] != 6 {
                return false;
            }
            // Only the first fragment carries the TCP header.
            let frag = u16::from_be_bytes([packet[6], packet[7]]) & 0x1fff;
            if frag != 0 {
                return false;
            }
            usize::from(packet[0] & 0x0f) * 4
        }
        6 => {
            // No extension headers: next header must be TCP directly.
            if packet.len() < 40 || packet[6] != 6 {
                return false;
            }
            40
        }
        _ => return false,
    };
    let Some(tcp) = packet.get_mut(tcp_start..) else {
        return false;
    };
    if tcp.len() < 20 || tcp[13] & 0x02 == 0 {
        return false;
    }
    let data_off = usize::from(tcp[12] >> 4) * 4;
    if data_off < 20 || data_off > tcp.len() {
        return false;
    }
    let mut i = 20;
    while i < data_off {
        match tcp[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let Some(&len) = tcp.get(i + 1) else {
                    return false;
                };
                let len = usize::from(len);
                if len < 2 || i + len > data_off {
                    return false;
                }
                if kind == 2 && len == 4 {
                    let old = u16::from_be_bytes([tcp[i + 2], tcp[i + 3]]);
                    if old <= max_mss {
                        return false;
                    }
                    tcp[i + 2..i + 4].copy_from_slice(&max_mss.to_be_bytes());
                    let sum = u16::from_be_bytes([tcp[16], tcp[17]]);
                    tcp[16..18].copy_from_slice(&checksum_adjust(sum, old, max_mss).to_be_bytes());
                    return true;
                }
                i += len;
            }
        }
    }
    false
}

/// RFC 1624 incremental update: HC' = ~(~HC + ~m + m').
fn checksum_adjust(sum: u16, old: u16, new: u16) -> u16 {
    let mut acc = u32::from(!sum) + u32::from(!old) + u32::from(new);
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The IPv4 or IPv6 packet inside an untagged Ethernet frame (`dev tap`), if it holds one.
pub fn ip_packet_in_frame(frame: &mut [u8]) -> Option<&mut [u8]> {
    match frame.get(12..14)? {
        [0x08, 0x00] | [0x86, 0xdd] => Some(&mut frame[14..]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from(c[0]) << 8
            };
            acc += u32::from(w);
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    fn tcp_checksum_v4(p: &[u8]) -> u16 {
        let tcp = &p[20..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[12..20]);
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(tcp);
        checksum(&pseudo)
    }

    fn syn_v4(mss: u16) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 48, 0, 0, 0x40, 0, 64, 6, 0, 0, 198, 19, 0, 2, 198, 19, 0, 1, // IPv4
            0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x70, 0x02, 0xff, 0xff, 0, 0, 0,
            0, // TCP, doff 7
            1, 1, 2, 4, 0, 0, 4, 2, // NOP NOP MSS(4) SACK-permitted
        ];
        p[44..46].copy_from_slice(&mss.to_be_bytes());
        let c = tcp_checksum_v4(&p);
        p[36..38].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn clamps_v4_syn_and_keeps_checksum_valid() {
        let mut p = syn_v4(1460);
        assert!(clamp_mss(&mut p, 1360));
        assert_eq!(u16::from_be_bytes([p[44], p[45]]), 1360);
        assert_eq!(
            tcp_checksum_v4(&p),
            0,
            "checksum must verify after the change"
        );
        // Already small enough: untouched.
        let mut q = syn_v4(1200);
        let before = q.clone();
        assert!(!clamp_mss(&mut q, 1360));
        assert_eq!(q, before);
    }

    #[test]
    fn ignores_non_syn_non_tcp_and_garbage() {
        let mut p = syn_v4(1460);
        p[33] = 0x10; // ACK only
        assert!(!clamp_mss(&mut p, 1000));
        let mut udp = syn_v4(1460);
        udp[9] = 17;
        assert!(!clamp_mss(&mut udp, 1000));
        for n in 0..48 {
            let mut t = syn_v4(1460)[..n].to_vec();
            let _ = clamp_mss(&mut t, 1000);
        }
        let mut bad = syn_v4(1460);
        bad[43] = 0; // option length 0
        assert!(!clamp_mss(&mut bad, 1000));
    }

    #[test]
    fn clamps_inside_ethernet_frames() {
        let mut frame = vec![0xff; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&syn_v4(1460));
        let ip = ip_packet_in_frame(&mut frame).expect("IPv4 in the frame");
        assert!(clamp_mss(ip, 1300));
        assert_eq!(u16::from_be_bytes([frame[14 + 44], frame[14 + 45]]), 1300);
        assert_eq!(tcp_checksum_v4(&frame[14..]), 0);
        // ARP, VLAN-tagged and runt frames are left alone.
        let mut arp = vec![0xff; 12];
        arp.extend_from_slice(&[0x08, 0x06, 0, 1]);
        assert!(ip_packet_in_frame(&mut arp).is_none());
        let mut vlan = vec![0xff; 12];
        vlan.extend_from_slice(&[0x81, 0x00, 0, 1, 0x08, 0x00]);
        assert!(ip_packet_in_frame(&mut vlan).is_none());
        assert!(ip_packet_in_frame(&mut [0u8; 13]).is_none());
    }

    #[test]
    fn clamps_v6_syn() {
        let mut p = vec![0x60, 0, 0, 0, 0, 28, 6, 64];
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8].repeat(8));
        p.extend_from_slice(&[
            0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x70, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        p.extend_from_slice(&[1, 1, 2, 4, 0x05, 0xa0, 4, 2]);
        assert!(clamp_mss(&mut p, 1340));
        assert_eq!(u16::from_be_bytes([p[64], p[65]]), 1340);
    }
}
