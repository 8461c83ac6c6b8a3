//! Official-account callback protocol: signatures, safe-mode crypto, XML messages and passive replies. No business rules.
//!
//! How linli uses it, per push:
//! 1. GET URL verification: [`crypto::verify_signature`] over `[token, timestamp, nonce]`, then echo `echostr`.
//! 2. POST: check the body size, [`message::parse_envelope`]; in safe/compatible mode verify `msg_signature`
//!    over `[token, timestamp, nonce, Encrypt]` and [`crypto::MsgCrypt::decrypt`] (or
//!    [`crypto::MsgCrypt::decrypt_verified`], which does both); in plaintext mode verify `signature`.
//! 3. [`message::parse_message`] on the (decrypted) XML, dedupe on [`message::Message::dedupe_key`].
//! 4. Answer with [`reply::SUCCESS`], a [`reply::text_reply`], or in safe mode its [`reply::encrypted_reply`].

pub mod crypto;
pub mod message;
pub mod reply;

#[cfg(test)]
mod fuzz_tests;
