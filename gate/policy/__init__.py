"""The policy: rules that turn Facts and Signals into a Decision."""
