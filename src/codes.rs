//! The error codes: the `code` of every `{code, message, request_id}` answer, one enum matched by
//! variant in the code and listed in the spec, so a client can switch on it.

macro_rules! error_codes {
    ($($variant:ident = $code:literal,)+) => {
        /// A stable, machine-readable reason for a refusal or a failure. The `message` beside it
        /// is for people and may change; the code does not.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, poem_openapi::Enum)]
        pub enum ErrorCode {
            $(#[oai(rename = $code)] #[serde(rename = $code)] $variant,)+
        }

        impl ErrorCode {
            /// Every code, in order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The code as it is written in an answer.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                }
            }
        }

        impl std::fmt::Display for ErrorCode {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

error_codes! {
    AlreadyAttributed = "already_attributed",
    AlreadyBound = "already_bound",
    AlreadyCustomer = "already_customer",
    AlreadyGrabbed = "already_grabbed",
    AmountRequired = "amount_required",
    AppExists = "app_exists",
    BadRequest = "bad_request",
    BadSignature = "bad_signature",
    BalanceSpent = "balance_spent",
    BelowMinimumSpend = "below_minimum_spend",
    BindingChanged = "binding_changed",
    BindingClosed = "binding_closed",
    BindingExists = "binding_exists",
    BindingState = "binding_state",
    CannotArchive = "cannot_archive",
    ClaimWindowClosed = "claim_window_closed",
    CompanyRequired = "company_required",
    Conflict = "conflict",
    CouponEnded = "coupon_ended",
    CouponExpired = "coupon_expired",
    CouponHasClaims = "coupon_has_claims",
    CouponNotYetValid = "coupon_not_yet_valid",
    CouponNotYours = "coupon_not_yours",
    CouponRevoked = "coupon_revoked",
    CouponTemplateBroken = "coupon_template_broken",
    CouponTermsLocked = "coupon_terms_locked",
    CouponUsed = "coupon_used",
    CouponWrongMerchant = "coupon_wrong_merchant",
    CredentialsRejected = "credentials_rejected",
    EncryptionNotConfigured = "encryption_not_configured",
    EncryptionRequired = "encryption_required",
    Forbidden = "forbidden",
    HouseholdLimitReached = "household_limit_reached",
    IdempotencyKeyReused = "idempotency_key_reused",
    InsufficientBalance = "insufficient_balance",
    InsufficientPoints = "insufficient_points",
    Internal = "internal",
    InvalidAmount = "invalid_amount",
    InvalidBody = "invalid_body",
    InvalidCoupon = "invalid_coupon",
    InvalidCsv = "invalid_csv",
    InvalidDate = "invalid_date",
    InvalidItem = "invalid_item",
    InvalidItems = "invalid_items",
    InvalidMemberCode = "invalid_member_code",
    InvalidMerchant = "invalid_merchant",
    InvalidMultiplier = "invalid_multiplier",
    InvalidOwner = "invalid_owner",
    InvalidParent = "invalid_parent",
    InvalidPhone = "invalid_phone",
    InvalidPhoneCode = "invalid_phone_code",
    InvalidRedPacket = "invalid_red_packet",
    InvalidReference = "invalid_reference",
    InvalidRole = "invalid_role",
    InvalidRule = "invalid_rule",
    InvalidRules = "invalid_rules",
    InvalidTask = "invalid_task",
    InvalidTime = "invalid_time",
    InvalidXml = "invalid_xml",
    InvitationUsed = "invitation_used",
    InvitationVoid = "invitation_void",
    ItemArchived = "item_archived",
    ItemUnavailable = "item_unavailable",
    LimitReached = "limit_reached",
    MerchantCannotPay = "merchant_cannot_pay",
    MerchantExists = "merchant_exists",
    MerchantInUse = "merchant_in_use",
    MethodNotAllowed = "method_not_allowed",
    NoMiniProgramIdentity = "no_mini_program_identity",
    NoWechatIdentity = "no_wechat_identity",
    NotConfigured = "not_configured",
    NotFound = "not_found",
    OrderNoReused = "order_no_reused",
    OrgArchived = "org_archived",
    OrgHasChildren = "org_has_children",
    OrgNameTaken = "org_name_taken",
    PayloadTooLarge = "payload_too_large",
    PayoutNotFailed = "payout_not_failed",
    PhoneRequired = "phone_required",
    PushNonceReused = "push_nonce_reused",
    ReasonRequired = "reason_required",
    RedPacketBroken = "red_packet_broken",
    RedPacketEnded = "red_packet_ended",
    RedPacketNotActive = "red_packet_not_active",
    RedPacketNotDraft = "red_packet_not_draft",
    RedPacketNotStarted = "red_packet_not_started",
    RedPacketWindowOver = "red_packet_window_over",
    RedemptionCancelled = "redemption_cancelled",
    RedemptionChanged = "redemption_changed",
    RedemptionFulfilled = "redemption_fulfilled",
    ReferenceUsed = "reference_used",
    RefundNoReused = "refund_no_reused",
    RefundTooLarge = "refund_too_large",
    RequestInProgress = "request_in_progress",
    RequestTimeout = "request_timeout",
    RoomArchived = "room_archived",
    RoomExists = "room_exists",
    RoomFull = "room_full",
    RoomInOtherCommunity = "room_in_other_community",
    RosterEntryExists = "roster_entry_exists",
    SealingNotConfigured = "sealing_not_configured",
    SelfInvitation = "self_invitation",
    SelfInvite = "self_invite",
    SoldOut = "sold_out",
    StockBelowClaimed = "stock_below_claimed",
    StockBelowRedeemed = "stock_below_redeemed",
    TaskClosed = "task_closed",
    TaskEnded = "task_ended",
    TaskHeld = "task_held",
    TaskIsOpen = "task_is_open",
    TaskTermsLocked = "task_terms_locked",
    TooManyRequests = "too_many_requests",
    TooManyRows = "too_many_rows",
    Unauthorized = "unauthorized",
    Unavailable = "unavailable",
    Unsplittable = "unsplittable",
    UnsupportedMediaType = "unsupported_media_type",
    UpstreamUnavailable = "upstream_unavailable",
    ValidationFailed = "validation_failed",
    WalletRejected = "wallet_rejected",
    WithdrawalDailyLimit = "withdrawal_daily_limit",
    WithdrawalOutOfRange = "withdrawal_out_of_range",
}
