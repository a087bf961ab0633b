(function(){
const DATA = JSON.parse(document.getElementById('report-data').textContent);
const NS = 'http://www.w3.org/2000/svg';
const COLORS = ['#1f77b4','#ff7f0e','#2ca02c','#d62728','#9467bd','#8c564b','#e377c2','#7f7f7f','#bcbd22','#17becf'];
let drawn = 0, errors = 0;
function el(name, attrs, parent){const e=document.createElementNS(NS,name);for(const k in attrs)e.setAttribute(k,attrs[k]);if(parent)parent.appendChild(e);return e;}
function svg(fig,w,h){return el('svg',{width:w,height:h,viewBox:`0 0 ${w} ${h}`,class:'chart'},fig);}
function t(s){return Date.parse(s);}
function fmtTime(ms){const d=new Date(ms);return d.toISOString().slice(5,16).replace('T',' ');}
function scale(d0,d1,r0,r1){const k=d1===d0?0:(r1-r0)/(d1-d0);return v=>r0+(v-d0)*k;}
function axes(s,x0,x1,y0,y1,W,H,P,yfmt,noTimes){
  el('line',{x1:P,y1:H-P,x2:W-8,y2:H-P,stroke:'#9aa5b4'},s);el('line',{x1:P,y1:8,x2:P,y2:H-P,stroke:'#9aa5b4'},s);
  const lab=(x,y,txt,anchor)=>{const e=el('text',{x:x,y:y,'font-size':10,fill:'#4a5668','text-anchor':anchor||'middle'},s);e.textContent=txt;};
  if(!noTimes){lab(P,H-P+14,fmtTime(x0),'start');lab(W-8,H-P+14,fmtTime(x1),'end');}
  lab(P-4,H-P,yfmt(y0),'end');lab(P-4,14,yfmt(y1),'end');
}
function guard(fn){return function(){try{fn.apply(null,arguments);drawn++;}catch(e){errors++;console.error(e);}};}
const drift = guard(function(fig, series){
  const W=440,H=170,P=42,s=svg(fig,W,H);
  const xs=series.points.map(p=>t(p.t)),ys=series.points.map(p=>p.effect).filter(v=>v!==null);
  const x0=Math.min(...xs),x1=Math.max(...xs),y1=Math.max(series.threshold*1.5,...ys,1e-9);
  const X=scale(x0,x1,P,W-8),Y=scale(0,y1,H-P,10);
  axes(s,x0,x1,0,y1,W,H,P,v=>v.toFixed(2));
  el('line',{x1:P,x2:W-8,y1:Y(series.threshold),y2:Y(series.threshold),stroke:'#b3261e','stroke-dasharray':'4 3',class:'threshold'},s);
  const pts=series.points.filter(p=>p.effect!==null);
  el('path',{d:pts.map((p,i)=>(i?'L':'M')+X(t(p.t)).toFixed(1)+','+Y(p.effect).toFixed(1)).join(''),fill:'none',stroke:'#1f77b4','stroke-width':1.6,class:'series'},s);
  pts.forEach(p=>el('circle',{cx:X(t(p.t)),cy:Y(p.effect),r:p.drifted||p.degraded?3.5:2,fill:p.degraded?'#9aa5b4':(p.drifted?'#b3261e':'#1f77b4')},s));
});
const histogram = guard(function(fig, h){
  const W=440,H=190,P=36,s=svg(fig,W,H),n=h.labels.length,top=Math.max(...h.reference,...h.current,1e-9);
  const bw=(W-P-10)/n,Y=scale(0,top,H-P,10);
  axes(s,0,0,0,top,W,H,P,v=>(v*100).toFixed(0)+'%',true);
  h.labels.forEach((label,i)=>{
    const x=P+i*bw;
    el('rect',{x:x+bw*0.08,y:Y(h.reference[i]),width:bw*0.4,height:H-P-Y(h.reference[i]),fill:'#9aa5b4',class:'series'},s);
    el('rect',{x:x+bw*0.5,y:Y(h.current[i]),width:bw*0.4,height:H-P-Y(h.current[i]),fill:'#d62728',class:'series'},s);
    if(n<=8){const e=el('text',{x:x+bw/2,y:H-P+24,'font-size':8,fill:'#4a5668','text-anchor':'middle'},s);e.textContent=label.length>12?label.slice(0,11)+'…':label;}
  });
});
const stacked = guard(function(fig, dl){
  const W=900,H=200,P=42,s=svg(fig,W,H),pts=dl.points;
  const xs=pts.map(p=>t(p.t)),x0=Math.min(...xs),x1=Math.max(...xs);
  const tot=pts.map(p=>Object.values(p.by_reason).reduce((a,b)=>a+b,0)),top=Math.max(...tot,1);
  const X=scale(x0,x1,P+4,W-14),Y=scale(0,top,H-P,10),bw=Math.max(2,(W-P-20)/Math.max(pts.length,1)*0.7);
  axes(s,x0,x1,0,top,W,H,P,v=>v.toFixed(0));
  pts.forEach(p=>{let y=H-P;dl.reasons.forEach((r,i)=>{const v=p.by_reason[r]||0;if(!v)return;const h=H-P-Y(v);y-=h;
    el('rect',{x:X(t(p.t))-bw/2,y:y,width:bw,height:h,fill:COLORS[i%COLORS.length],class:'series'},s);});});
});
const volume = guard(function(fig, v){
  const W=900,H=170,P=42,s=svg(fig,W,H),pts=v.points;
  const xs=pts.map(p=>t(p.t)),x0=Math.min(...xs),x1=Math.max(...xs),top=Math.max(...pts.map(p=>p.rows),1);
  const X=scale(x0,x1,P+4,W-14),Y=scale(0,top,H-P,10),bw=Math.max(2,(W-P-20)/Math.max(pts.length,1)*0.7);
  axes(s,x0,x1,0,top,W,H,P,v=>v.toFixed(0));
  pts.forEach(p=>{el('rect',{x:X(t(p.t))-bw/2,y:Y(p.rows),width:bw,height:H-P-Y(p.rows),fill:p.final?'#2ca02c':'#a6d6a9',class:'series'},s);
    if(p.late)el('rect',{x:X(t(p.t))-bw/2,y:Y(p.late),width:bw,height:H-P-Y(p.late),fill:'#ff7f0e'},s);});
});
const timeline = guard(function(fig, rows, x0, x1){
  const W=900,P=170,R=22,H=rows.length*R+34,s=svg(fig,W,H),X=scale(x0,x1,P,W-14);
  rows.forEach((row,i)=>{const y=10+i*R;
    const lab=el('text',{x:P-8,y:y+12,'font-size':11,fill:'#1d2530','text-anchor':'end'},s);lab.textContent=row.label;
    row.spans.forEach(sp=>{const a=X(sp[0]),b=X(sp[1]===null?x1:sp[1]);
      el('rect',{x:a,y:y+2,width:Math.max(3,b-a),height:R-8,fill:sp[2]||'#d62728',rx:2,class:'series'},s);});});
  const lab=(x,txt,anchor)=>{const e=el('text',{x:x,y:H-6,'font-size':10,fill:'#4a5668','text-anchor':anchor},s);e.textContent=txt;};
  lab(P,fmtTime(x0),'start');lab(W-14,fmtTime(x1),'end');
});
document.querySelectorAll('figure[data-chart]').forEach(fig=>{
  const src=DATA.sources[+fig.dataset.source],kind=fig.dataset.chart,i=+fig.dataset.index;
  if(kind==='drift')drift(fig,src.drift[i]);
  else if(kind==='histogram')histogram(fig,src.histograms[i]);
  else if(kind==='dead_letters')stacked(fig,src.dead_letters);
  else if(kind==='volume')volume(fig,src.volume);
  else if(kind==='alerts'||kind==='expectations'){
    const rows=kind==='alerts'
      ? src.alerts.map(e=>({label:e.feature+' ('+e.method+')',spans:[[t(e.start),e.end?t(e.end):null]]}))
      : src.expectations.map(x=>({label:x.expectation,spans:x.points.map(p=>[t(p.t),t(p.t)+DATA.window_ms,p.success?'#2ca02c':'#d62728'])}));
    timeline(fig,rows,t(DATA.first),t(DATA.last)+DATA.window_ms);
  }
});
document.body.dataset.chartsDrawn = drawn;
document.body.dataset.chartErrors = errors;
})();
