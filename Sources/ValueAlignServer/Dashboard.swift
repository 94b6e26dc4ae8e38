import Foundation
import Hummingbird
import NIOCore
import ValueAlignCore
import ValueSpace

extension GuardServer {
    /// GET /dashboard: for an admin (bearer key or session cookie) the page; `?key=` opens a
    /// session and redirects to a clean URL; anyone else gets the login form.
    func dashboard(_ request: Request, context: GuardContext) async throws -> Response {
        if let presented = request.uri.queryParameters["key"] {
            return try login(String(presented))
        }
        do {
            _ = try gate.admin(request)
        } catch let error where error.status == .unauthorized {
            return html(Self.loginPage(message: nil), status: .unauthorized)
        }
        let records = try await audit.query(AuditQuery(limit: configuration.dashboardWindow))
        return html(dashboardPage(records))
    }

    /// POST /dashboard/login with a form field `key`.
    func dashboardLogin(_ request: Request, context: GuardContext) async throws -> Response {
        let data = try await bodyData(request)
        let form = String(decoding: data, as: UTF8.self)
        var key: String?
        for pair in form.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0] == "key" {
                key = String(kv[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
            }
        }
        guard let key, !key.isEmpty else { return html(Self.loginPage(message: "Enter an admin key."), status: .badRequest) }
        return try login(key)
    }

    func login(_ key: String) throws -> Response {
        guard !configuration.access.adminKeys.isEmpty else { throw Gatekeeper.adminDisabled }
        guard let admin = configuration.access.admin(key) else {
            metrics.increment("valuealign_auth_failures_total")
            return html(Self.loginPage(message: "That is not an admin key."), status: .unauthorized)
        }
        let token = sessions.open(adminID: admin.id)
        return Response(status: .seeOther, headers: [
            .location: "/dashboard",
            .setCookie: "va_session=\(token); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(Int(sessions.lifetime.seconds))",
        ])
    }

    /// GET /admin/audit?limit=&action=&key=&since=&format=jsonl|csv (admin key).
    func auditExport(_ request: Request, context: GuardContext) async throws -> Response {
        let q = request.uri.queryParameters
        var query = AuditQuery(limit: 1000)
        if let l = q["limit"] {
            guard let n = Int(l), (1...100_000).contains(n) else { throw APIError.invalid("'limit' must be an integer in 1...100000", param: "limit") }
            query.limit = n
        }
        query.action = q["action"].map(String.init)
        query.keyID = q["key"].map(String.init)
        query.requestID = q["request_id"].map(String.init)
        if let s = q["since"] {
            guard let date = parseDate(String(s)) else { throw APIError.invalid("'since' must be an ISO 8601 time or unix seconds", param: "since") }
            query.since = date
        }
        let format = AuditExport.Format(rawValue: q["format"].map(String.init) ?? "jsonl")
        guard let format else { throw APIError.invalid("'format' must be jsonl or csv", param: "format") }
        let records = try await audit.query(query)
        let text = AuditExport.render(records, as: format)
        return Response(status: .ok, headers: [.contentType: format == .csv ? "text/csv; charset=utf-8" : "application/x-ndjson"],
                        body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                                           .contentSecurityPolicy: "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func loginPage(message: String?) -> String {
        """
        <!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>ValueAlign guard: sign in</title>
        <style>body{font-family:Helvetica,Arial,sans-serif;max-width:28em;margin:4em auto;color:#222}input{font-size:1em;padding:.3em;width:100%;box-sizing:border-box}button{margin-top:.8em;font-size:1em}</style>
        </head><body><h1>ValueAlign guard</h1>\(message.map { "<p style=\"color:#b00\">\(HTML.escape($0))</p>" } ?? "")
        <form method="post" action="/dashboard/login"><label>Admin key<br><input type="password" name="key" autocomplete="off" autofocus></label><br><button type="submit">Open the dashboard</button></form>
        </body></html>
        """
    }

    /// The page: headline figures, the radar of recent outputs against the target, per-value
    /// block and flag rates, and the latest decisions.
    func dashboardPage(_ records: [AuditRecord]) -> String {
        let chats = records.filter { $0.endpoint.hasPrefix("chat") }
        let count = Double(max(chats.count, 1))
        func share(_ action: String) -> Double { Double(chats.filter { $0.action == action }.count) / count }
        let outputs = chats.compactMap(\.outputVector).filter { $0.count == 10 }
        let inputs = chats.compactMap(\.inputVector).filter { $0.count == 10 }
        func mean(_ vectors: [[Double]]) -> [Double] {
            guard !vectors.isEmpty else { return [Double](repeating: 0, count: 10) }
            return (0..<10).map { i in vectors.map { $0[i] }.reduce(0, +) / Double(vectors.count) }
        }
        var profiles: [ValueProfile] = []
        if !outputs.isEmpty, let v = try? ValueVector(mean(outputs)) {
            profiles.append(ValueProfile(name: "answers (mean of \(outputs.count))", kind: .measured, vector: v, sampleCount: outputs.count))
        }
        if !inputs.isEmpty, let v = try? ValueVector(mean(inputs)) {
            profiles.append(ValueProfile(name: "user inputs (mean of \(inputs.count))", kind: .measured, vector: v, sampleCount: inputs.count))
        }
        let radar = ProfileReport(title: "", profiles: profiles, target: policy.target).radarSVG()
        let latencies = chats.map(\.totalMilliseconds).sorted()
        func percentile(_ p: Double) -> String {
            guard !latencies.isEmpty else { return "–" }
            return String(format: "%.0f ms", latencies[min(latencies.count - 1, Int(p * Double(latencies.count - 1)))])
        }

        let rows = valueRows(chats, outputs: outputs.isEmpty ? nil : mean(outputs))
        let recent = recentRows(records)
        let facts: [(String, String)] = [
            ("Decisions shown", "\(records.count) (chat: \(chats.count))"),
            ("Allowed", percent(share("allow"))), ("Flagged", percent(share("flag"))), ("Revised", percent(share("revise"))),
            ("Blocked", percent(share("block"))), ("Errors", percent(share("error"))),
            ("Latency p50 / p99", "\(percentile(0.5)) / \(percentile(0.99))"),
        ]
        let factHTML = facts.map { "<div class=\"fact\"><div class=\"label\">\(HTML.escape($0.0))</div><div class=\"value\">\(HTML.escape($0.1))</div></div>" }.joined()
        let legend = ([("target: \(policy.target.name)", "#444444")] + profiles.enumerated().map { ($1.name, ProfileReportPalette.colours[$0 % ProfileReportPalette.colours.count]) })
            .map { "<span><span class=\"swatch\" style=\"background:\($0.1)\"></span>\(HTML.escape($0.0))</span>" }.joined()
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>ValueAlign guard</title>
            <style>
            \(Self.dashboardStyle)
            </style></head><body>
            <h1>ValueAlign guard</h1>
            <div class="muted">Policy <b>\(HTML.escape(policy.name))</b> · model \(HTML.escape(upstream.modelName)) · evaluator \(HTML.escape(batcher.evaluator.name)) · audit \(HTML.escape(audit.location)) · the last \(configuration.dashboardWindow) decisions at most · \(HTML.escape(AuditExport.timestamp(Date())))</div>
            <div class="facts">\(factHTML)</div>
            <div class="row">
            <div><h2>Recent traffic against the target</h2><p class="legend">\(legend)</p>\(radar)</div>
            <div><h2>Per value: thresholds crossed</h2>
            <p class="muted">Share of chat decisions in which a threshold on the value (input or output) was crossed, by its action.</p>
            <table><tr><th>Value</th><th>Target</th><th>Answers (mean)</th><th>Blocked</th><th>Revised</th><th>Flagged</th></tr>
            \(rows)</table></div>
            </div>
            <h2>Latest decisions</h2>
            <table><tr><th>Time (UTC)</th><th>Request</th><th>Key</th><th>Endpoint</th><th>Action</th><th>Status</th><th>ms</th><th>Reasons</th></tr>
            \(recent)</table>
            </body></html>
            """
    }

    /// Per value: the share of chat decisions in which a threshold on it was crossed, by action,
    /// beside the target and the answers' mean (nil without answers).
    func valueRows(_ chats: [AuditRecord], outputs meanOutput: [Double]?) -> String {
        let count = Double(max(chats.count, 1))
        var rows = ""
        for value in SchwartzValue.allCases {
            let needle = ".\(value.rawValue) "
            func rate(_ action: String) -> Double {
                Double(chats.filter { r in r.reasons.contains { $0.contains(needle) && $0.hasSuffix("(\(action))") } }.count) / count
            }
            let (b, r, f) = (rate("block"), rate("revise"), rate("flag"))
            let target = policy.target.vector[value]
            let mean = meanOutput.map { String(format: "%+.2f", $0[value.index]) } ?? "–"
            rows += "<tr><td>\(HTML.escape(value.displayName))</td><td>\(String(format: "%+.2f", target))</td><td>\(mean)</td>"
            rows += "<td>\(bar(b, "#c0392b"))</td><td>\(bar(r, "#e67e22"))</td><td>\(bar(f, "#f1c40f"))</td></tr>\n"
        }
        return rows
    }

    /// The latest 25 decisions as table rows.
    func recentRows(_ records: [AuditRecord]) -> String {
        var recent = ""
        for r in records.prefix(25) {
            let reasons = r.reasons.prefix(3).joined(separator: "; ") + (r.reasons.count > 3 ? "; …" : "")
            recent += "<tr class=\"a-\(HTML.escape(r.action))\"><td>\(HTML.escape(AuditExport.timestamp(r.time)))</td><td>\(HTML.escape(r.requestID))</td><td>\(HTML.escape(r.keyID))</td>"
            recent += "<td>\(HTML.escape(r.endpoint))</td><td><b>\(HTML.escape(r.action))</b></td><td>\(r.status)</td><td>\(String(format: "%.0f", r.totalMilliseconds))</td><td>\(HTML.escape(reasons))</td></tr>\n"
        }
        return recent
    }

    /// The dashboard's style sheet.
    static let dashboardStyle = """
            body { font-family: Helvetica, Arial, sans-serif; margin: 1.5em auto; max-width: 1180px; color: #222; padding: 0 1em; }
            h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.1em; border-bottom: 1px solid #ddd; margin-top: 1.5em; }
            .muted { color: #666; font-size: 0.9em; }
            .facts { display: flex; flex-wrap: wrap; gap: 0.8em; margin: 1em 0; }
            .fact { border: 1px solid #ddd; border-radius: 6px; padding: 0.5em 0.9em; min-width: 8em; }
            .fact .label { font-size: 0.8em; color: #666; } .fact .value { font-size: 1.3em; font-weight: 600; }
            .row { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
            table { border-collapse: collapse; font-size: 0.85em; } th, td { border-bottom: 1px solid #eee; padding: 0.25em 0.5em; text-align: left; }
            .bar { display: inline-block; height: 0.8em; vertical-align: middle; margin-right: 0.4em; }
            .legend span { margin-right: 1em; } .swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.3em; }
            svg text { font-size: 11px; fill: #333; } .grid { fill: none; stroke: #ddd; } .grid.zero { stroke: #999; stroke-dasharray: 3 3; }
            .axis { stroke: #ccc; } svg text.ring { font-size: 9px; fill: #888; }
            .profile-shape { fill-opacity: 0.12; stroke-width: 2; } .profile-shape.target { fill-opacity: 0.04; stroke-dasharray: 6 4; }
            tr.a-block td:nth-child(5) { color: #c0392b; } tr.a-flag td:nth-child(5) { color: #b7950b; } tr.a-revise td:nth-child(5) { color: #d35400; } tr.a-error td:nth-child(5) { color: #7f8c8d; }
        """

    func bar(_ rate: Double, _ colour: String) -> String {
        "<span class=\"bar\" style=\"width:\(Int((rate * 80).rounded()))px;background:\(colour)\"></span>\(percent(rate))"
    }

    func percent(_ x: Double) -> String { String(format: "%.1f%%", x * 100) }
}

/// The colours ProfileReport gives profiles after the target, in order.
enum ProfileReportPalette {
    static let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]
}
