//! Ports the host picks itself: an app's router port, a process replica's `PORT`. A
//! crate of its own because the router and the runtime both pick ports and must share
//! one set of those held.
//!
//! The kernel hands out a free port when asked to bind port 0, but the port is only
//! taken once its real user binds it, moments later — and under concurrency (50 apps
//! deployed at once) another router or replica can be handed the same port in between.
//! So every port the host picks goes through here: it is held from the moment it is
//! picked until its user has bound it (or stopped), and never handed out twice
//! meanwhile. A bind that still fails with "address in use" (another program took it)
//! picks again.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::{Mutex, OnceLock};

fn held() -> &'static Mutex<HashSet<u16>> {
    static HELD: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    HELD.get_or_init(Default::default)
}

/// A port no one else in this process will be handed until this is dropped.
#[derive(Debug)]
pub struct ReservedPort(u16);

impl ReservedPort {
    pub fn port(&self) -> u16 {
        self.0
    }
}

impl Drop for ReservedPort {
    fn drop(&mut self) {
        held().lock().unwrap().remove(&self.0);
    }
}

/// Picks a port that is free on `ip` now and that this process does not hold already.
pub fn reserve(ip: IpAddr) -> std::io::Result<ReservedPort> {
    for _ in 0..64 {
        let port = TcpListener::bind(SocketAddr::new(ip, 0))?.local_addr()?.port();
        if held().lock().unwrap().insert(port) {
            return Ok(ReservedPort(port));
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, format!("no free port on {ip} after 64 tries")))
}

/// Whether an error (anywhere in its chain) is "address already in use".
pub fn in_use(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_held_at_once_are_all_different() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let ports: Vec<ReservedPort> = (0..500).map(|_| reserve(ip).unwrap()).collect();
        let distinct: HashSet<u16> = ports.iter().map(|p| p.port()).collect();
        assert_eq!(distinct.len(), ports.len());
    }

    #[test]
    fn a_released_port_may_be_handed_out_again() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let port = reserve(ip).unwrap();
        let number = port.port();
        drop(port);
        assert!(!held().lock().unwrap().contains(&number));
    }
}
