//! What the request a task is handling carries with it, for code that does
//! not see the request: its id (for problem bodies and logs) and deadline,
//! the types that name them, and the task-local that holds them. Every
//! other module reads them here; this one reads no other.

mod deadline;
mod id;

pub use deadline::Deadline;
pub use id::RequestId;

/// The request's id and deadline, as the layers in front of it set them.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestContext {
    pub(crate) id: Option<RequestId>,
    pub(crate) deadline: Option<Deadline>,
}

tokio::task_local! {
    pub(crate) static CURRENT: RequestContext;
}

/// Reads the current context; `None` outside every scope.
pub(crate) fn with<T>(read: impl FnOnce(&RequestContext) -> Option<T>) -> Option<T> {
    CURRENT.try_with(read).ok().flatten()
}
