//! `/merchant/v1/orders` and counter write-offs.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use time::OffsetDateTime;

use super::MerchantKey;
use crate::api::common::{ms, ts};
use crate::api::ApiTags;
use crate::db::retail::orders::{OrderRow, RefundRow};
use crate::domain::retail::orders::{self, Item, OrderInput};
use crate::error::ApiError;
use crate::state::AppState;

pub struct MerchantOrdersApi;

/// One line of an order.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct OrderItem {
    #[oai(validator(min_length = 1, max_length = 64))]
    pub name: String,
    /// The category campaigns multiply points by (e.g. `fruit`).
    #[oai(validator(min_length = 1, max_length = 32))]
    pub category: String,
    /// Fen.
    #[oai(validator(minimum(value = "0"), maximum(value = "100000000")))]
    pub amount: i64,
}

/// An order to report.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct ReportOrder {
    /// Your order number, unique at your shop: reporting it again answers the first report.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub order_no: String,
    /// The code the resident shows from the mini-program (valid ten minutes).
    #[oai(validator(min_length = 1, max_length = 32))]
    pub member_code: String,
    /// The total before any coupon, in fen; the items add up to it.
    #[oai(validator(minimum(value = "1"), maximum(value = "100000000")))]
    pub amount: i64,
    #[oai(validator(min_items = 1, max_items = 200))]
    pub items: Vec<OrderItem>,
    pub ordered_at: OffsetDateTime,
    /// A coupon the resident uses on it.
    #[oai(validator(min_length = 1, max_length = 32))]
    pub coupon_code: Option<String>,
}

/// A recorded order.
#[derive(Debug, Clone, Object)]
pub struct Order {
    pub id: i64,
    pub order_no: String,
    pub resident_id: i64,
    /// Fen before the coupon.
    pub amount: i64,
    /// Fen the coupon took off.
    pub discount: i64,
    /// Fen paid.
    pub paid: i64,
    /// Fen refunded so far.
    pub refunded: i64,
    /// Points the order earned.
    pub points: i64,
    /// Points taken back by refunds.
    pub points_back: i64,
    pub ordered_at: OffsetDateTime,
}

impl From<OrderRow> for Order {
    fn from(o: OrderRow) -> Self {
        Self {
            id: o.id,
            order_no: o.order_no,
            resident_id: o.resident_id,
            amount: o.amount,
            discount: o.discount,
            paid: o.paid,
            refunded: o.refunded,
            points: o.points,
            points_back: o.points_back,
            ordered_at: ts(o.ordered_at),
        }
    }
}

/// A refund to record.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct ReportRefund {
    /// Your refund number, unique per order: sending it again answers the first refund.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub refund_no: String,
    /// Fen refunded; at most what is left of what was paid.
    #[oai(validator(minimum(value = "1"), maximum(value = "100000000")))]
    pub amount: i64,
}

/// A recorded refund.
#[derive(Debug, Clone, Object)]
pub struct Refund {
    pub refund_no: String,
    pub amount: i64,
    /// Points taken back (never more than the resident still had).
    pub points_back: i64,
    /// Whether the order's coupon was given back (a full refund while it is still valid).
    pub coupon_restored: bool,
    pub created_at: OffsetDateTime,
}

impl From<RefundRow> for Refund {
    fn from(r: RefundRow) -> Self {
        Self {
            refund_no: r.refund_no,
            amount: r.amount,
            points_back: r.points_back,
            coupon_restored: r.coupon_restored != 0,
            created_at: ts(r.created_at),
        }
    }
}

/// A coupon used at the counter.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct CounterWriteOff {
    /// What it is used on, in fen; needed for discounts and minimum spends.
    #[oai(validator(minimum(value = "1"), maximum(value = "100000000")))]
    pub amount: Option<i64>,
}

/// The result of a counter write-off.
#[derive(Debug, Clone, Object)]
pub struct WrittenOff {
    pub coupon_id: i64,
    /// Fen off.
    pub discount: i64,
}

#[derive(ApiResponse)]
pub enum OrderAnswer {
    /// Recorded.
    #[oai(status = 201)]
    Created(Json<Order>),
    /// Reported before under this number: the first report, nothing changed.
    #[oai(status = 200)]
    Replayed(Json<Order>),
}

#[derive(ApiResponse)]
pub enum RefundAnswer {
    /// Recorded (or, for a repeated refund number, the first refund).
    #[oai(status = 201)]
    Created(Json<Refund>),
}

#[OpenApi(prefix_path = "/merchant/v1", tag = "ApiTags::Merchant")]
impl MerchantOrdersApi {
    /// Report an order. A coupon on it is checked (yours to accept, its minimum spend, its
    /// validity, the resident's own, unused) and written off in the same step; the resident earns
    /// points on what they paid. Idempotent on the order number.
    #[oai(path = "/orders", method = "post", operation_id = "report_order")]
    async fn report_order(
        &self,
        state: Data<&AppState>,
        key: MerchantKey,
        body: Json<ReportOrder>,
    ) -> Result<OrderAnswer, ApiError> {
        let b = body.0;
        let input = OrderInput {
            order_no: b.order_no,
            member_code: b.member_code,
            amount: b.amount,
            items: b.items.into_iter().map(|i| Item { name: i.name, category: i.category, amount: i.amount }).collect(),
            ordered_at: ms(b.ordered_at),
            coupon_code: b.coupon_code,
        };
        let (order, replayed) = orders::report(&state.db, &state.payer, &key.0, input).await?;
        Ok(if replayed { OrderAnswer::Replayed(Json(order.into())) } else { OrderAnswer::Created(Json(order.into())) })
    }

    /// Refund part or all of an order: points for the refunded part come back; a full refund
    /// gives the coupon back while it is valid. Idempotent on the refund number.
    #[oai(path = "/orders/:order_no/refunds", method = "post", operation_id = "refund_order")]
    async fn refund_order(
        &self,
        state: Data<&AppState>,
        key: MerchantKey,
        order_no: Path<String>,
        body: Json<ReportRefund>,
    ) -> Result<RefundAnswer, ApiError> {
        let r = orders::refund(&state.db, &key.0, &order_no.0, &body.0.refund_no, body.0.amount).await?;
        Ok(RefundAnswer::Created(Json(r.into())))
    }

    /// Write a coupon off at the counter (核销) by its code, without an order.
    #[oai(path = "/coupons/:code/write-off", method = "post", operation_id = "write_off_coupon")]
    async fn write_off_coupon(
        &self,
        state: Data<&AppState>,
        key: MerchantKey,
        code: Path<String>,
        body: Json<CounterWriteOff>,
    ) -> Result<Json<WrittenOff>, ApiError> {
        let (coupon_id, discount) = orders::write_off(&state.db, &key.0, &code.0, body.0.amount).await?;
        Ok(Json(WrittenOff { coupon_id, discount }))
    }
}
