//! What runs on or reads from a node: the node-agent pod ([`agent`]) and the
//! host files it reads in one exec ([`probe`]).

pub mod agent;
pub mod probe;
