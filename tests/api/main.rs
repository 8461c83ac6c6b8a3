//! Integration tests: the real application over HTTP, a fresh database per test, on SQLite or
//! (with `TEST_DATABASE_URL`) PostgreSQL. One binary, so it links once.

mod access;
mod accounts;
mod cli;
mod conformance;
mod coupon_rules;
mod coupons;
mod edges;
mod helpers;
mod imports;
mod layout;
mod limits;
mod mp;
mod oa;
mod openapi;
mod orders;
mod orgs;
mod pay;
mod platform_certificates;
mod queries;
mod red_packets;
mod redemption;
mod retries;
mod rooms_and_roster;
mod sandbox;
mod schema;
mod slow_clients;
mod surface;
mod tasks;
