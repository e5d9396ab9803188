//! docsync daemon library (placeholder).
