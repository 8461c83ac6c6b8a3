//! WeChat's side of the drill, through wechat-mock's control API: residents who open the cash red
//! packets they were sent and confirm the transfers waiting for them (so payouts can succeed while
//! linli dies and comes back), and WeChat Pay faults injected at random.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

use crate::world::{control, MockLink};

const SENDREDPACK: &str = "/mmpaymkttransfers/sendredpack";
const TRANSFER_BILLS: &str = wechat_mock::pay::v3::TRANSFER_BILLS_PATH;

/// Queues faults on WeChat Pay's send calls: some pay and then answer too late for linli's
/// timeout, some answer 503 or SYSTEM_ERROR without paying. Answers a description.
pub async fn inject_faults(http: &reqwest::Client, mock_base: &str, rng: &mut StdRng) -> anyhow::Result<String> {
    let faults = [
        json!({"path": SENDREDPACK, "delay_after_ms": 1500, "times": rng.gen_range(1..=3)}),
        json!({"path": TRANSFER_BILLS, "delay_after_ms": 1500, "times": rng.gen_range(1..=3)}),
        json!({"path": SENDREDPACK, "http_status": 503, "times": rng.gen_range(1..=2)}),
        json!({"path": TRANSFER_BILLS, "pay_err_code": "SYSTEM_ERROR", "times": rng.gen_range(1..=2)}),
    ];
    let mut said = Vec::new();
    for f in faults {
        let _: Value = control(http.post(format!("{mock_base}/__mock/faults")).json(&f)).await?;
        let what = if f.get("delay_after_ms").is_some() {
            "paid, answered after 1.5 s"
        } else if f.get("http_status").is_some() {
            "HTTP 503"
        } else {
            "SYSTEM_ERROR"
        };
        said.push(format!("{} × {} on {}", f["times"], what, f["path"].as_str().unwrap_or("")));
    }
    Ok(said.join("; "))
}

/// Calls linli made to WeChat Pay's send and query endpoints so far, as the mock counted them.
pub async fn pay_calls(http: &reqwest::Client, mock_base: &str) -> anyhow::Result<String> {
    let report: Value = control(http.get(format!("{mock_base}/__mock/tokens"))).await?;
    let calls = |path: &str| report["calls"][path].as_u64().unwrap_or(0);
    Ok(format!(
        "sendredpack {}, gethbinfo {}, transfer-bills create {}",
        calls(SENDREDPACK),
        calls("/mmpaymkttransfers/gethbinfo"),
        calls(TRANSFER_BILLS)
    ))
}

/// What the residents did.
pub struct Paid {
    pub received: usize,
    pub confirmed: usize,
}

/// Residents acting in WeChat until stopped.
pub struct Payers {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Paid>,
}

impl Payers {
    pub fn start(http: reqwest::Client, mock_base: String) -> Payers {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mock = MockLink::Process { base_url: mock_base.clone() };
            let mut done: HashSet<String> = HashSet::new();
            let mut paid = Paid { received: 0, confirmed: 0 };
            let mut tick = 0u32;
            while !flag.load(Ordering::Relaxed) {
                if let Ok(ledger) = mock.payments(&http).await {
                    let waiting: Vec<_> = ledger.into_iter().filter(|p| !done.contains(&p.bill_no)).collect();
                    for p in waiting {
                        let action = match (p.channel.as_str(), p.status.as_str()) {
                            ("red_packet", "SENT") => "red-packets/{}/receive",
                            ("transfer_bill", "WAIT_USER_CONFIRM") => "transfer-bills/{}/confirm",
                            _ => continue,
                        };
                        let url = format!("{mock_base}/__mock/pay/{}", action.replace("{}", &p.bill_no));
                        if control::<Value>(http.post(url)).await.is_ok() {
                            done.insert(p.bill_no.clone());
                            if p.channel == "red_packet" {
                                paid.received += 1;
                            } else {
                                paid.confirmed += 1;
                            }
                        }
                    }
                }
                // Notifications linli missed while it was dead are delivered again when due.
                tick += 1;
                if tick % 10 == 0 {
                    let _ = control::<Value>(http.post(format!("{mock_base}/__mock/pay/notifications/run"))).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            paid
        });
        Payers { stop, task }
    }

    pub async fn stop(self) -> Paid {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or(Paid { received: 0, confirmed: 0 })
    }
}
