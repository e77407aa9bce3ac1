//! TODO
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    ConversationalAgent,
    ImageGenerator,
    DataAugmentation,
}
