//! IP networks written as CIDR (`10.0.0.0/8`, `2001:db8::/32`, or one address), and whether
//! an address lies in one: the allow list of RTP sources (`serve --rtp-allow`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network: an address and a prefix length (bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in the network. An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`,
    /// as a dual-stack socket reports it) is judged as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// `ADDRESS/BITS`, or an address alone (all its bits). Host bits set below the prefix
    /// (`10.1.2.3/8`) are refused: they usually mean a typo.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a network (CIDR such as 10.0.0.0/8 or an address)");
        let (a, bits) = match s.trim().split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match bits {
            Some(b) => b.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(bad)?,
            None => max,
        };
        let net = Cidr { addr, prefix };
        // the network's own address must be the one written
        let zeroed = match addr {
            IpAddr::V4(v) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::from((u32::from(v) & mask).to_be_bytes())
            }
            IpAddr::V6(v) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::from((u128::from(v) & mask).to_be_bytes())
            }
        };
        if zeroed != addr {
            return Err(format!(
                "{s:?} has host bits set below /{prefix} (the network is {zeroed}/{prefix})"
            ));
        }
        Ok(net)
    }
}

/// Whether `ip` may send: an empty list allows every address.
pub fn allowed(list: &[Cidr], ip: IpAddr) -> bool {
    list.is_empty() || list.iter().any(|c| c.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_hold_their_addresses_only() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.0.0")));
        assert!(net.contains(ip("10.1.255.255")));
        assert!(!net.contains(ip("10.2.0.0")));
        assert!(!net.contains(ip("::1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::")));
        assert_eq!(v6.to_string(), "2001:db8::/32");
        assert_eq!(one.to_string(), "127.0.0.1/32");
    }

    #[test]
    fn wrong_networks_are_refused_with_the_value() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "nope",
            "10.0.0.0/",
            "::/129",
            "10.1.2.3/8",
        ] {
            let e = bad.parse::<Cidr>().unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn an_empty_list_allows_everyone() {
        assert!(allowed(&[], ip("192.0.2.1")));
        let list = [
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        assert!(allowed(&list, ip("10.9.9.9")));
        assert!(!allowed(&list, ip("127.0.0.2")));
    }
}
