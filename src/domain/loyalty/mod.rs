//! Loyalty: the points programme (ledger, check-in, rules), and what the official account's
//! pushes do (follows, check-ins), with the grouped check-in writer.

pub mod checkin_writer;
pub mod oa;
pub mod points;
pub mod pushes;
