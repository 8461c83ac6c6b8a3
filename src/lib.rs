//! linli (邻里): the marketing and engagement back end of a smart-community system on WeChat.
//! See `README.md` for running it and `DESIGN` notes in the module docs for how it is built.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod codes;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod sandbox;
pub mod sealing;
pub mod secret;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod walkthrough;
pub mod wechat;
pub mod workers;
