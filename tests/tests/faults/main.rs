//! Faults on loopback: owners killed, restarted, slow or silent, the ring changing during a
//! load; breakers and substitutes for a dead owner; warm handoff on membership changes; hedged gets; and
//! service discovery, whose providers fail, hang or change the membership.

mod breakers;
mod discovery;
mod handoff;
mod hedging;
mod owners;
