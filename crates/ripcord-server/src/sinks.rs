//! Which webhook sink URLs the server accepts and may reach.
//!
//! A sink URL is set through the API by whoever may `manage`, and the
//! server then POSTs signed bodies to it: without care that is a way to make
//! the server call its own loopback services, the private network or a
//! cloud metadata address (169.254.169.254). So a sink URL is parsed, not
//! prefix-checked (http or https, a host, no user info, no control
//! characters), and the address it names — or, for a host name, every
//! address it resolves to at delivery time — must not be in a denied range.
//! Loopback, private and link-local ranges are denied unless the config
//! allows them (`webhooks.allow` in `ripcord.yaml`); unspecified, multicast
//! and broadcast addresses are always denied.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::Deserialize;

/// Sinks one service may have.
pub const MAX_SINKS: usize = 16;

/// The longest sink URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

/// An address range that is denied unless allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Range {
    /// 127.0.0.0/8, ::1, and the name `localhost`.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, 100.64/10 (carrier-grade NAT),
    /// fc00::/7.
    Private,
    /// 169.254/16 (cloud metadata lives here) and fe80::/10.
    LinkLocal,
}

impl Range {
    pub fn as_str(self) -> &'static str {
        match self {
            Range::Loopback => "loopback",
            Range::Private => "private",
            Range::LinkLocal => "link_local",
        }
    }
}

/// Ranges sinks may reach beyond the public internet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowed(pub BTreeSet<Range>);

impl Allowed {
    pub fn with(ranges: &[Range]) -> Allowed {
        Allowed(ranges.iter().copied().collect())
    }

    /// Why `ip` may not be reached, if it may not.
    pub fn refuse(&self, ip: IpAddr) -> Option<String> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        if let Some(kind) = never(ip) {
            return Some(format!("{ip} is {kind}, which no sink may be"));
        }
        let range = range_of(ip)?;
        (!self.0.contains(&range)).then(|| {
            format!(
                "{ip} is a {} address, which the server's config does not allow \
                 (webhooks.allow)",
                range.as_str()
            )
        })
    }
}

fn never(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => Some("unspecified"),
        IpAddr::V4(v4) if v4.is_multicast() => Some("multicast"),
        IpAddr::V4(v4) if v4 == Ipv4Addr::BROADCAST => Some("broadcast"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("unspecified"),
        IpAddr::V6(v6) if v6.is_multicast() => Some("multicast"),
        _ => None,
    }
}

fn range_of(ip: IpAddr) -> Option<Range> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some(Range::Loopback)
            } else if v4.is_link_local() {
                Some(Range::LinkLocal)
            } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
                Some(Range::Private)
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6 == Ipv6Addr::LOCALHOST {
                Some(Range::Loopback)
            } else if first & 0xffc0 == 0xfe80 {
                Some(Range::LinkLocal)
            } else if first & 0xfe00 == 0xfc00 {
                Some(Range::Private)
            } else {
                None
            }
        }
    }
}

/// Parses and checks a sink URL; the error says what is wrong with it (the
/// caller names the field).
pub fn check_url(raw: &str, allowed: &Allowed) -> Result<Url, String> {
    if raw.len() > MAX_URL_BYTES {
        return Err(format!(
            "longer than {MAX_URL_BYTES} bytes ({} bytes)",
            raw.len()
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err("must not contain control characters (CR, LF, tab…)".into());
    }
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
        .ok_or("must be an http:// or https:// URL")?;
    // The URL standard reads `http:///etc/passwd` as host `etc`; nobody
    // writing it meant that.
    if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
        return Err("must name a host (http://host/…)".into());
    }
    let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password (put secrets in `secret`)".into());
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("must name a host (http://host/…)")?;
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        if let Some(why) = allowed.refuse(ip) {
            return Err(why);
        }
    } else {
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if (name == "localhost" || name.ends_with(".localhost"))
            && !allowed.0.contains(&Range::Loopback)
        {
            return Err(format!(
                "{name} is a loopback name, which the server's config does not allow \
                 (webhooks.allow)"
            ));
        }
    }
    Ok(url)
}

/// Resolves host names for deliveries and drops every address a sink may
/// not reach, so that a name cannot smuggle a denied address in (nor
/// change to one after the URL was checked).
pub struct Guarded {
    pub allowed: Allowed,
}

impl Resolve for Guarded {
    fn resolve(&self, name: Name) -> Resolving {
        let allowed = self.allowed.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allowed.refuse(a.ip()).is_none())
                .collect();
            if kept.is_empty() {
                let why = found
                    .first()
                    .and_then(|a| allowed.refuse(a.ip()))
                    .unwrap_or_else(|| "no address".into());
                return Err(format!("{host}: {why}").into());
            }
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_their_addresses_checked() {
        let none = Allowed::default();
        let bad = [
            ("http:///etc/passwd", "must name a host"),
            ("http://a.example/x\r\nHost: evil", "control characters"),
            (
                "http://169.254.169.254/latest/meta-data",
                "169.254.169.254 is a link_local address",
            ),
            ("http://user:pw@a.example/", "user name or password"),
            ("ftp://a.example/", "http:// or https://"),
            ("http://127.0.0.1:9/", "loopback"),
            ("http://localhost/", "loopback name"),
            ("http://10.1.2.3/", "private"),
            ("http://[fe80::1]/", "link_local"),
            ("http://[::ffff:169.254.169.254]/", "link_local"),
            ("http://0.0.0.0/", "unspecified"),
        ];
        for (url, why) in bad {
            let err = check_url(url, &none).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
        }
        assert!(check_url("https://hooks.example.com/a?b=c", &none).is_ok());
        let loopback = Allowed::with(&[Range::Loopback]);
        assert!(check_url("http://127.0.0.1:9/", &loopback).is_ok());
        // Allowing loopback does not allow metadata.
        assert!(check_url("http://169.254.169.254/", &loopback).is_err());
    }
}
