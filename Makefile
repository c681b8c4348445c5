# Aliases of ./dev for those who type make; ./dev itself needs only bash.
.PHONY: bootstrap demo test bench lint
bootstrap demo test bench lint:
	./dev $@
