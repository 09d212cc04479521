//! Batched TUN I/O on Linux with the kernel's offload header (`IFF_VNET_HDR`).
//!
//! With offload on, one `read` of the device can return a TCP or UDP "super-packet" of up to
//! 64 KiB that the kernel did not segment; [`RecvBatch`] splits it into MTU-sized IP packets
//! (with their checksums) so each can be encrypted on its own. On the way back, [`SendBatch`]
//! coalesces consecutive segments of one TCP flow into one super-packet and one `write`. Both
//! turn tens of system calls into one, which is where a VPN's time goes.
//!
//! Without offload (a TAP device, or a kernel that refuses the flags) the same types still work,
//! one packet per call.

use std::io;

use tun_rs::{GROTable, VIRTIO_NET_HDR_LEN};

use crate::LinuxTun;

/// Headroom [`SendBatch`] buffers keep in front of each packet for the offload header.
pub const SEND_HEADROOM: usize = VIRTIO_NET_HDR_LEN;

/// Up to this many packets are read or written per batch.
pub const BATCH: usize = 128;

/// Packets read from the device in one wake-up.
pub struct RecvBatch {
    original: Vec<u8>,
    bufs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    len: usize,
    seg_cap: usize,
}

impl RecvBatch {
    /// Buffers for packets of up to `mtu` bytes.
    pub fn new(mtu: u16) -> Self {
        let seg_cap = usize::from(mtu).max(1500) + 64;
        Self {
            original: vec![0; VIRTIO_NET_HDR_LEN + 65535],
            // Separate zeroed allocations, not clones: untouched pages stay non-resident.
            bufs: (0..BATCH).map(|_| vec![0; seg_cap]).collect(),
            sizes: vec![0; BATCH],
            len: 0,
            seg_cap,
        }
    }

    /// Number of packets held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch holds no packet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Packet `i` (`i < len()`), mutable so it can be altered in place (MSS clamping).
    pub fn packet_mut(&mut self, i: usize) -> &mut [u8] {
        let n = self.sizes[i];
        &mut self.bufs[i][..n]
    }

    /// Room to receive into: index of the first free buffer, and how many are left.
    fn free(&self) -> usize {
        BATCH - self.len
    }

    /// Puts one packet read by other means (the userspace stack) into an empty slot.
    pub fn push(&mut self, packet: &[u8]) -> bool {
        if self.len == BATCH || packet.len() > self.seg_cap {
            return false;
        }
        self.bufs[self.len][..packet.len()].copy_from_slice(packet);
        self.sizes[self.len] = packet.len();
        self.len += 1;
        true
    }

    /// Empties the batch.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// Packets to write to the device in one go.
pub struct SendBatch {
    bufs: Vec<Vec<u8>>,
    len: usize,
    gro: GROTable,
}

impl Default for SendBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl SendBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self {
            bufs: (0..BATCH).map(|_| Vec::with_capacity(2048)).collect(),
            len: 0,
            gro: GROTable::default(),
        }
    }

    /// Whether no packet is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the batch cannot take another packet.
    pub fn is_full(&self) -> bool {
        self.len == BATCH
    }

    /// Drops every queued packet.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Queues a copy of `packet`.
    pub fn push(&mut self, packet: &[u8]) {
        debug_assert!(!self.is_full());
        let b = &mut self.bufs[self.len];
        b.clear();
        b.resize(SEND_HEADROOM, 0);
        b.extend_from_slice(packet);
        self.len += 1;
    }

    /// Packets queued, as a slice of buffers with [`SEND_HEADROOM`] in front.
    fn queued(&mut self) -> &mut [Vec<u8>] {
        &mut self.bufs[..self.len]
    }
}

impl LinuxTun {
    /// Whether the device was opened with the offload header.
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Waits for at least one packet, then takes whatever else is ready without waiting, up to
    /// [`BATCH`] packets. Returns the number of packets in `batch` (which is emptied first).
    pub async fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.clear();
        let start = batch.len;
        let RecvBatch {
            original,
            bufs,
            sizes,
            len,
            ..
        } = batch;
        let n = self
            .dev
            .recv_multiple(original, &mut bufs[start..], &mut sizes[start..], 0)
            .await?;
        *len += n;
        // A split super-packet needs up to 64 KiB / MSS buffers: only read again while that
        // many are left.
        let worst = 65535 / usize::from(self.mtu.saturating_sub(80).max(500)) + 1;
        while batch.free() > worst {
            let RecvBatch {
                original,
                bufs,
                sizes,
                len,
                ..
            } = batch;
            let at = *len;
            match self
                .dev
                .try_recv_multiple(original, &mut bufs[at..], &mut sizes[at..], 0)
            {
                Ok(n) => *len += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if *len > 0 => {
                    tracing::debug!("TUN read after a batch: {e}");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(batch.len)
    }

    /// Writes every queued packet (coalescing TCP segments when offload is on) and empties
    /// `batch`.
    pub async fn send_batch(&self, batch: &mut SendBatch) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let r = if self.offload {
            let mut gro = std::mem::take(&mut batch.gro);
            let r = self
                .dev
                .send_multiple(&mut gro, batch.queued(), SEND_HEADROOM)
                .await;
            batch.gro = gro;
            r.map(|_| ())
        } else {
            let mut r = Ok(());
            for b in batch.queued() {
                if let Err(e) = self.dev.send(&b[SEND_HEADROOM..]).await {
                    r = Err(e);
                }
            }
            r
        };
        batch.len = 0;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recv_batch_push_and_clear() {
        let mut b = RecvBatch::new(1500);
        assert!(b.is_empty());
        assert!(b.push(&[0x45; 60]));
        assert!(b.push(&[0x60; 80]));
        assert_eq!(b.len(), 2);
        assert_eq!(b.packet_mut(1).len(), 80);
        assert!(!b.push(&vec![0; 4000]), "larger than a segment buffer");
        b.clear();
        assert!(b.is_empty());
    }

    #[test]
    fn send_batch_keeps_headroom() {
        let mut b = SendBatch::new();
        b.push(&[1, 2, 3]);
        assert_eq!(&b.queued()[0][SEND_HEADROOM..], &[1, 2, 3]);
        for _ in 1..BATCH {
            b.push(&[0]);
        }
        assert!(b.is_full());
    }
}
