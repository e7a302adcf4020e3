-- wrk: every request a POST without a body (a buy of quantity 1; the no-op servers ignore it).
wrk.method = "POST"
