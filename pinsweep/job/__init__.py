"""One job: build, train under the timer, measure both ceilings, evaluate; run in a process of its own."""
