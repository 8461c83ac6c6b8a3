//! Storage of the retail context: merchants' orders, refunds, member codes and purchase-points
//! multipliers.

pub mod orders;
