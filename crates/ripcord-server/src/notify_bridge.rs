//! Where governance hands a rendered message to a notification channel:
//! the channel comes from the server config, the template from the
//! policy's `templates:` or the built-ins. This is the governance
//! machine's [`Messenger`] on the live service.

use std::cell::RefCell;
use std::collections::BTreeMap;

use ripcord_core::Time;
use ripcord_core::policy::Policy;
use ripcord_govern::{Messenger, Notification};
use ripcord_store::OutboxEntry;

use crate::notify::{self, ChannelConfig, TemplateSource};

/// Renders each notification when the machine sends it and keeps the
/// delivery for the batch, so it is queued in the same transaction as the
/// incident change it announces.
pub struct Bridge<'a> {
    channels: &'a BTreeMap<String, ChannelConfig>,
    overrides: Vec<TemplateSource>,
    now: Time,
    queued: RefCell<Vec<OutboxEntry>>,
}

impl<'a> Bridge<'a> {
    pub fn new(channels: &'a BTreeMap<String, ChannelConfig>, policy: &Policy, now: Time) -> Self {
        Bridge {
            channels,
            overrides: notify::from_policy(&policy.governance.templates),
            now,
            queued: RefCell::new(Vec::new()),
        }
    }

    /// The deliveries queued so far.
    pub fn into_queued(self) -> Vec<OutboxEntry> {
        self.queued.into_inner()
    }
}

impl Messenger for Bridge<'_> {
    fn queue(&self, n: &Notification) -> Result<(), String> {
        let config = self
            .channels
            .get(&n.channel)
            .ok_or_else(|| format!("channel \"{}\" is not configured on this server", n.channel))?;
        let entry = notify::message(
            &n.channel,
            config,
            n.kind,
            &self.overrides,
            &n.template,
            &n.facts,
            self.now.0,
        )
        .map_err(|e| e.to_string())?;
        self.queued.borrow_mut().push(entry);
        Ok(())
    }
}
