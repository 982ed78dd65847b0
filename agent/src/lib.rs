//! oras-agent: pulls a step's inputs, wraps the step, pushes its outputs
