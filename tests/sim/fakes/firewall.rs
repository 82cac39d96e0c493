//! The firewall tools of a guest that shares the host's network (fallback mode, or
//! `LIMA_SIM_NETWORK=host`): `nft`, `iptables` and their kin refuse, so rules meant for the
//! guest can never land in the ruleset of the machine running the tests. A guest with its own
//! network namespace runs the real tools and never reaches this.

use std::ffi::OsString;

use crate::fakes::complain;

/// The names bound over (namespace mode) or put in front of (fallback mode) the real tools.
pub const TOOLS: &[&str] = &[
    "nft",
    "iptables",
    "ip6tables",
    "iptables-nft",
    "ip6tables-nft",
    "iptables-legacy",
    "ip6tables-legacy",
    "iptables-restore",
    "ip6tables-restore",
    "xtables-nft-multi",
    "xtables-legacy-multi",
    "ebtables",
    "arptables",
];

pub fn main(tool: &str, _args: &[OsString]) -> i32 {
    complain(
        tool,
        "refused by the Lima simulator: this guest shares the host's network (fallback mode \
         or LIMA_SIM_NETWORK=host), so its firewall would be the host's; boot it with its own \
         network namespace (the default user-mode network) to use firewall rules",
    );
    1
}
