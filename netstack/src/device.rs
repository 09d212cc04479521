//! The in-memory `smoltcp` device: two packet queues, no kernel.
//!
//! The stack task fills `rx` with IP packets decrypted from the tunnel and drains `tx` into the
//! bounded outbound channel. `tx_budget` is how many packets the channel can still take: once
//! `tx` holds that many, [`Device::transmit`] answers `None`, smoltcp keeps the data in its
//! socket buffers and retries on a later poll (back-pressure instead of drops).
//!
//! Replies produced while a packet is received (a RST for an unknown port, for instance) use the
//! transmit token handed out with the receive token; those ignore the budget, so ingress can
//! always make progress. They are at most one per received packet.

use std::collections::VecDeque;

use bytes::BytesMut;
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

pub(crate) struct MemDevice {
    pub(crate) rx: VecDeque<BytesMut>,
    pub(crate) tx: VecDeque<BytesMut>,
    pub(crate) tx_budget: usize,
    pub(crate) mtu: usize,
}

impl MemDevice {
    pub(crate) fn new(mtu: usize) -> Self {
        Self {
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            tx_budget: 0,
            mtu,
        }
    }
}

pub(crate) struct RxToken(BytesMut);

pub(crate) struct TxToken<'a>(&'a mut VecDeque<BytesMut>);

impl phy::RxToken for RxToken {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut buf = BytesMut::zeroed(len);
        let r = f(&mut buf);
        self.0.push_back(buf);
        r
    }
}

impl Device for MemDevice {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let packet = self.rx.pop_front()?;
        Some((RxToken(packet), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        if self.tx.len() >= self.tx_budget {
            return None;
        }
        Some(TxToken(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::{RxToken as _, TxToken as _};

    #[test]
    fn transmit_respects_budget_but_replies_do_not() {
        let mut dev = MemDevice::new(1500);
        assert!(dev.transmit(Instant::ZERO).is_none());
        dev.tx_budget = 1;
        dev.transmit(Instant::ZERO)
            .unwrap()
            .consume(3, |b| b.copy_from_slice(&[1, 2, 3]));
        assert!(dev.transmit(Instant::ZERO).is_none());
        dev.rx.push_back(BytesMut::from(&[9u8][..]));
        let (rx, tx) = dev.receive(Instant::ZERO).unwrap();
        assert_eq!(rx.consume(|b| b.to_vec()), vec![9]);
        tx.consume(1, |b| b[0] = 7);
        assert_eq!(dev.tx.len(), 2);
        assert_eq!(&dev.tx[0][..], &[1, 2, 3]);
        assert_eq!(dev.capabilities().max_transmission_unit, 1500);
    }
}
