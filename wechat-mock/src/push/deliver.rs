//! Delivering pushes: the POST WeChat makes, the reply read back as WeChat reads it, deliveries of
//! one push in parallel, and the GET with `echostr` WeChat makes when the URL is configured.

use std::error::Error as _;
use std::fmt;
use std::sync::Arc;

use rand::Rng;
use tokio::sync::Barrier;

use super::{OaPusher, Push};
use crate::callback::reply::{decode_reply, Reply, ReplyError, ReplyKeys, TextReply};
use crate::callback::signature::signature;

/// What came back from one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    /// The HTTP status.
    pub status: u16,
    /// The raw body (lossless for UTF-8 bodies).
    pub body: String,
    /// The reply as WeChat would read it: `success`, empty, a reply message, or why WeChat would
    /// refuse it (a non-200 status, garbage, an encrypted reply that does not verify or decrypt, a
    /// plaintext reply in safe mode).
    pub reply: Result<Reply, ReplyError>,
    /// Whether the reply came encrypted (and verified and decrypted).
    pub reply_encrypted: bool,
}

impl PushOutcome {
    /// The text reply, if the account answered with one.
    pub fn text(&self) -> Option<&TextReply> {
        match &self.reply {
            Ok(Reply::Text(text)) => Some(text),
            _ => None,
        }
    }

    /// Whether the account acknowledged the push in a way WeChat accepts (200 with `success`, an
    /// empty body or a valid reply message).
    pub fn is_acknowledged(&self) -> bool {
        self.reply.is_ok()
    }
}

/// A delivery that got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryError {
    /// No answer within the timeout (WeChat: 5 s, then it retries).
    Timeout,
    /// The connection failed or broke.
    Http(String),
    /// A concurrent delivery's task died.
    Task(String),
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("no answer within the timeout"),
            Self::Http(why) => write!(f, "delivery failed: {why}"),
            Self::Task(why) => write!(f, "delivery task failed: {why}"),
        }
    }
}

impl std::error::Error for DeliveryError {}

impl From<reqwest::Error> for DeliveryError {
    fn from(err: reqwest::Error) -> Self {
        if err.is_timeout() {
            return Self::Timeout;
        }
        // reqwest's own message is generic; the causes say what actually happened.
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Http(text)
    }
}

/// The answer to a URL verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlCheck {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: String,
    /// The `echostr` sent.
    pub echostr: String,
    /// Whether WeChat would accept the URL: status 200 and the body exactly `echostr`.
    pub passed: bool,
}

impl OaPusher {
    /// POSTs `push` once and reads the answer. Before sending, a genuine follow or unfollow updates
    /// the attached mock, as WeChat's own state changes before it notifies the account.
    pub async fn deliver(&self, push: &Push) -> Result<PushOutcome, DeliveryError> {
        self.apply_to_mock(push);
        let response =
            self.client.post(push.url()).header("content-type", "text/xml").body(push.body().to_owned()).send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let body = String::from_utf8_lossy(&bytes).into_owned();
        let (reply, reply_encrypted) = if status == 200 {
            let keys = ReplyKeys { token: &self.config.token, key: &self.key, appid: &self.config.appid };
            match decode_reply(&body, self.config.mode, &keys) {
                Ok((reply, encrypted)) => (Ok(reply), encrypted),
                Err(err) => (Err(err), false),
            }
        } else {
            (Err(ReplyError::HttpStatus(status)), false)
        };
        Ok(PushOutcome { status, body, reply, reply_encrypted })
    }

    /// Delivers `push` `n` times at once: all requests are started together and are in flight at
    /// the same time. Outcomes come back in start order.
    pub async fn deliver_concurrently(&self, push: &Push, n: usize) -> Vec<Result<PushOutcome, DeliveryError>> {
        if n == 0 {
            return Vec::new();
        }
        let barrier = Arc::new(Barrier::new(n));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let pusher = self.clone();
                let push = push.clone();
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    pusher.deliver(&push).await
                })
            })
            .collect();
        let mut outcomes = Vec::with_capacity(n);
        for task in tasks {
            outcomes.push(match task.await {
                Ok(outcome) => outcome,
                Err(join_error) => Err(DeliveryError::Task(join_error.to_string())),
            });
        }
        outcomes
    }

    /// The GET WeChat sends when the callback URL is saved: `signature`, `timestamp`, `nonce`,
    /// `echostr`; the account must echo `echostr` (in plain text, in every mode).
    pub async fn verify_url(&self) -> Result<UrlCheck, DeliveryError> {
        let timestamp = self.now_unix().to_string();
        let nonce = super::message::new_nonce();
        let echostr = rand::thread_rng().gen::<u64>().to_string();
        let mut url = self.callback.clone();
        url.query_pairs_mut()
            .append_pair("signature", &signature(&self.config.token, &timestamp, &nonce))
            .append_pair("echostr", &echostr)
            .append_pair("timestamp", &timestamp)
            .append_pair("nonce", &nonce);
        let response = self.client.get(url).send().await?;
        let status = response.status().as_u16();
        let body = response.text().await?;
        Ok(UrlCheck { passed: status == 200 && body == echostr, status, body, echostr })
    }
}
