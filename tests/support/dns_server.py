"""A small authoritative DNS server on 127.0.0.1 for reverse-DNS tests: PTR, A and AAAA records from a dict,
NXDOMAIN for anything else, and names it never answers (a resolver's timeout)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset


@dataclass
class Zone:
    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (name, type) -> values
    silent: set[str] = field(default_factory=set)  # names never answered
    slow: dict[str, float] = field(default_factory=dict)  # names answered after this many seconds
    queries: list[tuple[str, str]] = field(default_factory=list)

    def ptr(self, ip: str, *names: str) -> None:
        self.records[(dns.reversename.from_address(ip).to_text(), "PTR")] = [name.rstrip(".") + "." for name in names]

    def address(self, name: str, *ips: str) -> None:
        for ip in ips:
            self.records.setdefault((name.rstrip(".") + ".", "AAAA" if ":" in ip else "A"), []).append(ip)

    def silence_ptr(self, ip: str) -> None:
        self.silent.add(dns.reversename.from_address(ip).to_text())

    def slow_ptr(self, ip: str, seconds: float) -> None:
        self.slow[dns.reversename.from_address(ip).to_text()] = seconds

    def delay(self, wire: bytes) -> float:
        return self.slow.get(dns.message.from_wire(wire).question[0].name.to_text(), 0.0)

    def answer(self, wire: bytes) -> bytes | None:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        name, kind = question.name.to_text(), dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, kind))
        if name in self.silent:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        values = self.records.get((name, kind))
        if values:
            response.answer.append(dns.rrset.from_text_list(name, 300, dns.rdataclass.IN, kind, values))
        elif not any(known == name for known, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()


@contextmanager
def dns_server(zone: Zone) -> Iterator[str]:
    """Serve `zone` over UDP on a free loopback port; yields "127.0.0.1:PORT"."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stopping = threading.Event()

    def send(reply: bytes, peer: tuple[str, int]) -> None:
        if not stopping.is_set():
            sock.sendto(reply, peer)

    def serve() -> None:
        while not stopping.is_set():
            try:
                wire, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            reply = zone.answer(wire)
            if reply is None:
                continue
            delay = zone.delay(wire)
            if delay:
                threading.Timer(delay, send, (reply, peer)).start()
            else:
                send(reply, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stopping.set()
        thread.join()
        sock.close()
