//! What a peer accepts from others and refuses: peer tokens and interceptors, TLS, hostile
//! request frames and replies, key and value limits, and the fuzz corpus replayed.

mod auth;
mod fuzz_corpus;
mod hostile_frames;
mod hostile_requests;
mod limits;
mod tls;
mod untrusted_replies;
