// The page: mount JobProgress for the operation named in the URL (?op=import-42&token=...).
import { createRoot } from "react-dom/client";
import { JobProgress } from "./JobProgress.tsx";

const params = new URLSearchParams(location.search);
const root = document.getElementById("root");
if (root) createRoot(root).render(<JobProgress op={params.get("op") ?? "import-42"} token={params.get("token") ?? ""} />);
