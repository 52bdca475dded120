//! Faults on loopback: owners killed, restarted, slow or silent, the ring changing during a
//! load; and service discovery, whose providers fail, hang or change the membership.

mod discovery;
mod owners;
