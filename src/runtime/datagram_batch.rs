//! Batches of OpenVPN packets between the session loop and the transport: encrypted packets
//! queued for one send (UDP GSO runs, or one TCP write), and datagrams taken from the socket in
//! one wake-up (`recvmmsg`, GRO super-datagrams split by their stride).

/// The kernel's limit on segments per UDP GSO send (`UDP_MAX_SEGMENTS`).
const MAX_GSO_SEGMENTS: usize = 64;
/// Payload bytes of one GSO send: the super-datagram's length must fit the 16-bit UDP length.
const MAX_GSO_BYTES: usize = 65_000;

/// Encrypted packets waiting to be sent, back to back in one buffer.
#[derive(Debug, Default)]
pub struct TxQueue {
    buf: Vec<u8>,
    lens: Vec<usize>,
}

impl TxQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            buf: Vec::with_capacity(128 * 1600),
            lens: Vec::with_capacity(128),
        }
    }

    /// Queues a copy of `packet`.
    pub fn push(&mut self, packet: &[u8]) {
        self.buf.extend_from_slice(packet);
        self.lens.push(packet.len());
    }

    /// Number of packets queued.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Bytes queued.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Empties the queue.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.lens.clear();
    }

    /// Every packet, one by one.
    pub fn packets(&self) -> impl Iterator<Item = &[u8]> {
        let mut at = 0;
        self.lens.iter().map(move |&n| {
            let p = &self.buf[at..at + n];
            at += n;
            p
        })
    }

    /// The queue cut into GSO runs: `(contents, segment size)`, where every segment of a run has
    /// the segment size except the last, which may be shorter (the kernel's rule). `max_segments`
    /// is what the socket can do (1 without GSO: every packet is its own run).
    pub fn runs(&self, max_segments: usize) -> Runs<'_> {
        Runs {
            q: self,
            next: 0,
            at: 0,
            max: max_segments.clamp(1, MAX_GSO_SEGMENTS),
        }
    }
}

/// Iterator of [`TxQueue::runs`].
pub struct Runs<'a> {
    q: &'a TxQueue,
    next: usize,
    at: usize,
    max: usize,
}

impl<'a> Iterator for Runs<'a> {
    type Item = (&'a [u8], usize);

    fn next(&mut self) -> Option<Self::Item> {
        let lens = &self.q.lens;
        let first = *lens.get(self.next)?;
        let start = self.at;
        let mut end = start + first;
        let mut i = self.next + 1;
        while i < lens.len() && i - self.next < self.max && end + lens[i] <= start + MAX_GSO_BYTES {
            let n = lens[i];
            if n > first {
                break;
            }
            end += n;
            i += 1;
            if n < first {
                break;
            }
        }
        self.next = i;
        self.at = end;
        Some((&self.q.buf[start..end], first))
    }
}

/// Datagrams received in one wake-up: up to `slots` buffers, each holding one datagram or a GRO
/// run of equal-size datagrams (`stride` bytes each, the last possibly shorter).
#[derive(Debug)]
pub struct RxQueue {
    /// Receive buffers (64 KiB each, so a GRO run fits).
    pub slots: Vec<Vec<u8>>,
    /// For each filled slot: `(bytes, stride)`.
    pub filled: Vec<(usize, usize)>,
}

impl RxQueue {
    /// `slots` buffers of 64 KiB.
    pub fn new(slots: usize) -> Self {
        Self {
            // One zeroed allocation each (not clones of one buffer), so pages the kernel never
            // writes into stay untouched and cost no resident memory.
            slots: (0..slots.max(1)).map(|_| vec![0; 65536]).collect(),
            filled: Vec::with_capacity(slots.max(1)),
        }
    }

    /// Forgets what was received.
    pub fn clear(&mut self) {
        self.filled.clear();
    }

    /// Stores one datagram received by other means in the next slot; false when full.
    pub fn push(&mut self, datagram: &[u8]) -> bool {
        let i = self.filled.len();
        let Some(slot) = self.slots.get_mut(i) else {
            return false;
        };
        if slot.len() < datagram.len() {
            slot.resize(datagram.len(), 0);
        }
        slot[..datagram.len()].copy_from_slice(datagram);
        self.filled.push((datagram.len(), datagram.len().max(1)));
        true
    }

    /// Whether nothing was received.
    pub fn is_empty(&self) -> bool {
        self.filled.is_empty()
    }

    /// Every datagram, GRO runs split by their stride.
    pub fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        self.filled
            .iter()
            .zip(&self.slots)
            .flat_map(|(&(len, stride), slot)| slot[..len].chunks(stride.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(lens: &[usize]) -> TxQueue {
        let mut q = TxQueue::new();
        for (i, &n) in lens.iter().enumerate() {
            q.push(&vec![i as u8; n]);
        }
        q
    }

    fn run_shapes(q: &TxQueue, max: usize) -> Vec<(usize, usize)> {
        q.runs(max).map(|(c, s)| (c.len(), s)).collect()
    }

    #[test]
    fn equal_packets_form_one_run_with_a_shorter_tail() {
        let q = queue(&[100, 100, 100, 40]);
        assert_eq!(run_shapes(&q, 64), vec![(340, 100)]);
    }

    #[test]
    fn a_shorter_packet_ends_a_run_and_a_longer_one_starts_the_next() {
        let q = queue(&[100, 50, 100, 100, 120, 120]);
        assert_eq!(run_shapes(&q, 64), vec![(150, 100), (200, 100), (240, 120)]);
    }

    #[test]
    fn runs_respect_the_segment_and_byte_limits() {
        let q = queue(&[10; 70]);
        assert_eq!(run_shapes(&q, 64), vec![(640, 10), (60, 10)]);
        assert_eq!(run_shapes(&q, 1).len(), 70, "no GSO: one packet per send");
        let q = queue(&[1400; 60]);
        let shapes = run_shapes(&q, 64);
        assert!(
            shapes.iter().all(|&(n, _)| n <= MAX_GSO_BYTES),
            "{shapes:?}"
        );
        assert_eq!(shapes.iter().map(|s| s.0).sum::<usize>(), 60 * 1400);
    }

    #[test]
    fn runs_keep_every_byte_in_order() {
        let q = queue(&[30, 30, 7, 30, 31, 2]);
        let joined: Vec<u8> = q.runs(64).flat_map(|(c, _)| c.to_vec()).collect();
        let direct: Vec<u8> = q.packets().flat_map(|p| p.to_vec()).collect();
        assert_eq!(joined, direct);
        assert_eq!(q.packets().count(), 6);
        assert_eq!(q.bytes(), 130);
    }

    #[test]
    fn gro_runs_are_split_by_stride() {
        let mut r = RxQueue::new(4);
        r.slots[0][..250].fill(1);
        r.filled.push((250, 100));
        assert!(r.push(&[9, 9, 9]));
        let sizes: Vec<usize> = r.datagrams().map(<[u8]>::len).collect();
        assert_eq!(sizes, vec![100, 100, 50, 3]);
        r.clear();
        assert!(r.is_empty());
    }
}
