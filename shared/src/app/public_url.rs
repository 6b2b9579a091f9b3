//! Whether a URL is one the public internet can reach over HTTPS: the hosted Letta API calls
//! the users' LiteLLM from Letta's own cloud, so a private or loopback address could never work
//! there (and would say where the private network is).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use reqwest::Url;

/// `None` when `url` is `https` on a public host; otherwise what is wrong with it.
pub fn problem(url: &str) -> Option<&'static str> {
    let Ok(parsed) = Url::parse(url) else {
        return Some("is not a URL");
    };
    if parsed.scheme() != "https" {
        return Some("must be https");
    }
    match parsed.host() {
        None => Some("has no host"),
        Some(url::Host::Domain(name)) => private_name(name).then_some("names a private host"),
        Some(url::Host::Ipv4(ip)) => private_ip(IpAddr::V4(ip)).then_some("is a private address"),
        Some(url::Host::Ipv6(ip)) => private_ip(IpAddr::V6(ip)).then_some("is a private address"),
    }
}

/// Names that resolve only inside a network: single labels, `localhost` and the suffixes kept
/// for private use.
fn private_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    const PRIVATE_SUFFIXES: [&str; 6] = [
        ".localhost",
        ".local",
        ".internal",
        ".lan",
        ".home.arpa",
        ".localdomain",
    ];
    !name.contains('.') || name == "localhost" || PRIVATE_SUFFIXES.iter().any(|s| name.ends_with(s))
}

fn private_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => private_v4(v4),
            None => private_v6(v6),
        },
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
}

fn private_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        // Unique local (fc00::/7) and link-local (fe80::/10).
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_https_urls_pass() {
        for good in [
            "https://llm.example.com",
            "https://llm.example.com:8443/v1",
            "https://93.184.216.34",
        ] {
            assert_eq!(problem(good), None, "{good}");
        }
        for (bad, why) in [
            ("http://llm.example.com", "must be https"),
            ("https://localhost:4000", "names a private host"),
            ("https://litellm", "names a private host"),
            ("https://litellm.internal", "names a private host"),
            ("https://gw.svc.LOCAL.", "names a private host"),
            ("https://127.0.0.1:4000", "is a private address"),
            ("https://10.1.2.3", "is a private address"),
            ("https://172.16.0.9", "is a private address"),
            ("https://192.168.1.1", "is a private address"),
            ("https://169.254.169.254", "is a private address"),
            ("https://100.64.0.1", "is a private address"),
            ("https://[::1]", "is a private address"),
            ("https://[fd00::1]", "is a private address"),
            ("https://[::ffff:10.0.0.1]", "is a private address"),
            ("litellm:4000", "must be https"),
            ("not a url", "is not a URL"),
        ] {
            assert_eq!(problem(bad), Some(why), "{bad}");
        }
    }
}
