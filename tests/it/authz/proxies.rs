//! Real proxies in front of a real backend (placeholder until the proxies land).
