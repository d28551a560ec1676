// A TypeScript client of both services, on the code that `make gen-clients` writes to gen/ts
// (protoc-gen-es; Connect-ES 2 reads its service descriptors, no other plugin is needed).
// `make gen-clients` type-checks this file against it. To run it, pass gRPC transports, e.g.
//   import { createGrpcTransport } from "@connectrpc/connect-node";  // Node.js >= 22
//   const transport = createGrpcTransport({ baseUrl: "http://localhost:50051" });
import { createClient, type Transport } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { AuthService } from "../../gen/ts/payments/auth/v1/auth_pb";
import {
  TransactionService,
  TransactionStatus,
  TransactionType,
  type Transaction,
} from "../../gen/ts/payments/transaction/v1/transaction_pb";

/** Logs in with a password and records a payment of 12.50 EUR, once per idempotency key. */
export async function pay(
  auth: Transport,
  transactions: Transport,
  email: string,
  password: string,
  idempotencyKey: string,
): Promise<Transaction> {
  const { tokens } = await createClient(AuthService, auth).login({
    credentials: { case: "password", value: { email, password } },
  });
  if (tokens === undefined) throw new Error("login answered no tokens");
  const { transaction } = await createClient(TransactionService, transactions).createTransaction(
    { type: TransactionType.PAYMENT, amountMinor: 1250n, currency: "EUR", idempotencyKey },
    { headers: { authorization: `Bearer ${tokens.accessToken}` } },
  );
  if (transaction === undefined) throw new Error("CreateTransaction answered no transaction");
  return transaction;
}

/** One line per transaction, e.g. "2026-01-31T10:00:00.000Z PAYMENT 1250 EUR PENDING". */
export function describe(transaction: Transaction): string {
  const when = transaction.createdAt ? timestampDate(transaction.createdAt).toISOString() : "-";
  return [
    when,
    TransactionType[transaction.type],
    transaction.amountMinor.toString(),
    transaction.currency,
    TransactionStatus[transaction.status],
  ].join(" ");
}
