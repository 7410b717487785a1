//! A port in front of the real broker that the test controls: it turns connections away (the
//! broker cannot be reached), forwards them, or freezes them (a broker node that hangs, or a
//! network cut: connections stay open and nothing more arrives).

use crate::common::AMQP_URL;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Every connection is closed at once.
    Refuse,
    /// Connections go through to the broker.
    Forward,
    /// Open connections stop passing anything, new ones are accepted and never answered.
    Freeze,
}

pub(crate) struct BrokerGate {
    port: u16,
    state: watch::Sender<Gate>,
    refused: watch::Receiver<usize>,
}

impl BrokerGate {
    pub(crate) async fn start(initial: Gate) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("gate port");
        let port = listener.local_addr().expect("gate address").port();
        let (state, states) = watch::channel(initial);
        let (refusals, refused) = watch::channel(0);
        let broker = AMQP_URL
            .split('@')
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .expect("broker address in the URL")
            .to_owned();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let now = *states.borrow();
                match now {
                    Gate::Refuse => {
                        drop(client);
                        refusals.send_modify(|count| *count += 1);
                    }
                    Gate::Forward => {
                        tokio::spawn(forward(client, broker.clone(), states.clone()));
                    }
                    Gate::Freeze => {
                        tokio::spawn(hold(client));
                    }
                }
            }
        });
        Self {
            port,
            state,
            refused,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    pub(crate) fn set(&self, gate: Gate) {
        self.state.send_replace(gate);
    }

    /// Waits until the process has tried the broker and been turned away `times` times.
    pub(crate) async fn wait_refused(&mut self, times: usize, within: std::time::Duration) {
        tokio::time::timeout(within, self.refused.wait_for(|count| *count >= times))
            .await
            .expect("the process tries the broker")
            .expect("the gate runs");
    }
}

/// Copies both ways until the gate freezes, then holds both ends open in silence.
async fn forward(mut client: TcpStream, broker: String, mut states: watch::Receiver<Gate>) {
    let Ok(mut upstream) = TcpStream::connect(&broker).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => return,
        _ = states.wait_for(|gate| *gate == Gate::Freeze) => {}
    }
    hold((client, upstream)).await;
}

/// Keeps `what` open and answers nothing, for as long as the test runs.
async fn hold<T>(what: T) {
    std::future::pending::<()>().await;
    drop(what);
}
