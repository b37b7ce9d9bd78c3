//! Real Basic-auth clients through keygate (written by a helper).
